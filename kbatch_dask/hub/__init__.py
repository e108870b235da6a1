"""JupyterHub: a token of its own for each job (:mod:`.tokens`) and the hub's
public URLs (:mod:`.urls`)."""
