"""Score delivery: what Tally sends to the LMS gradebook, when, and what the LMS accepted.

    rules.py     pure: the score each ledger total and assessment grade becomes, when it is
                 sent, timestamps, backoff, what a read-back difference means
    models.py    line-item bindings per offering/assessment, delivery state per (line item, person)
    schedule.py  writes desired scores in the same transaction as the change (gradebook seams)
    bindings.py  binds each target to an LMS line item (launch item, find, create, rebind)
    queue.py     the delivery table as a queue: claim due rows, record what the LMS answered
    worker.py    the loop around them: `python -m tool worker`, the in-process thread, `sync`
    status.py    what the teacher's sync page shows; resend, retry, the total's maximum
    readback.py  where the LMS now holds another grade than the one Tally delivered

Delivery is reconciliation: every change writes the *desired* score of (line item, person);
a worker sends what differs from what the LMS last accepted, outside any transaction.
"""
