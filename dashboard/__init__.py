"""Streamlit dashboard over the results store: the accuracy-vs-throughput Pareto front, live during a search.

``nas dashboard`` (``dashboard.command``) launches ``dashboard/app.py``; ``data`` turns store queries
into pandas frames, ``charts`` builds the plotly figures and ``panels`` lays out each part of the page.
"""

DB_ENV = "NAS_DASHBOARD_DB"  # how `nas dashboard` hands the database URL to Streamlit: environment, not argv (`ps`)
