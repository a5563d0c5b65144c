"""Bounces and complaints that arrive after sending: VERP addresses, reading a bounce
mailbox, and what each event does to its reader.

Data flows one way: a message (``mailboxes``) is classified (``classify``), tied to its
delivery and reader (``record``: by its VERP address first, then the original Message-ID,
then the recipient) and stored with the policy applied in one transaction (the store's
``record_bounce``). Provider webhooks hand their events to the same ``record`` step.
"""
