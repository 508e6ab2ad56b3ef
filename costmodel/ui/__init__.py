"""What the dashboard pages need that is not the model: page state <-> URL (``state``), number formatting
(``format``), tables (``tables``), comparisons and sweeps (``sweeps``), formula rendering (``formulas``),
lessons (``lessons``), seed scenarios (``seeds``), plotly figures (``figures``) and reports (``report``).

No Streamlit here: pages import this, this never imports streamlit. Pages stay thin: widgets -> one call
here or in the package -> figures/tables.
"""
