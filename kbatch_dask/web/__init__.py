"""The web page of the queue: one page, two hosts.

The service serves it to hub users at its root (logged in with HubOAuth) and
``kbatch ui`` serves it for the local backend (on 127.0.0.1, with a token in
the URL). Both hand the page a :class:`~.source.JobSource` bound to who is
asking; the page renders the same records and JSON the CLI prints
(``JobRecord.to_dict()``), never a model of its own.

- :mod:`.source`: what a host gives the page (the protocol) and a list's ETag;
- :mod:`.render`: records to HTML, pure (tornado templates, autoescaped);
- :mod:`.usage`: the admin view's usage per user, from the same records, pure;
- :mod:`.handlers`: the tornado handlers and their routes, with the security
  headers (Content-Security-Policy) every answer carries;
- ``templates/`` and ``static/`` (package data): the HTML, one stylesheet with
  a light and a dark scheme, one small script (live updates, the log, cancel, resubmit).

It imports records, render, report, spec and errors only: never the service,
the CLI or a backend (tests/test_code_quality.py).
"""
