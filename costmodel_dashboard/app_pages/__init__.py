"""The dashboard's pages (Streamlit scripts run by ``costmodel_dashboard/app.py``; ``_widgets`` and ``_registry`` are shared)."""
