"""The costmodel dashboard (Streamlit): `costmodel dashboard` runs app.py; the pages are in app_pages/. Kept apart
from the costmodel package so that the package itself never imports Streamlit."""
