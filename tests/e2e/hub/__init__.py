"""End-to-end tests against a real JupyterHub and a Dask-Gateway authenticating
with it, all on 127.0.0.1 (see ``servers.py``)."""
