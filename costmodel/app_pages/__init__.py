"""The dashboard's pages (Streamlit scripts run by ``costmodel/app.py``; ``_widgets`` and ``_registry`` are shared)."""
