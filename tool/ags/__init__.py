"""Assignment and Grade Services: the Score value, the HTTP client to the LMS, access tokens.

    score.py      Score, ActivityProgress, GradingProgress: validated, serialised to AGS JSON
    http.py       the pooled HTTP session and the per-platform concurrency cap
    tokens.py     access tokens shared between processes (database or Redis)
    lineitems.py  line items and results over HTTP (find, create, update, read back)
    client.py     AgsClient: what the delivery worker calls; Outcome of each score post
"""
