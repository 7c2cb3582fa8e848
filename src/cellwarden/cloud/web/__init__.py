"""The dashboard: static files only (no CDN), served by the API app."""
