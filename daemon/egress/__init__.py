"""The only way out: network policy, audit log, socket guard and the one HTTP client.

::

    policy.py    who may reach which host (offline / ask / allow-listed)
    audit.py     the hash-chained, checkpointed log of every call (writer)
    chain.py     its hashing and signing;  verify.py  its verification
    store.py     where its records and latest checkpoint are kept
    guard.py     the audit hook that refuses sockets opened outside the gateway
    gateway.py   the HTTP client: decide, audit, send, count  (response.py: what it returns)
    pull.py      verified, resumable downloads from a Hugging Face-style hub
    remote.py    an OpenAI-compatible chat client

    service.py   all of the above assembled for the daemon (built first, closed last)
    secrets.py   keychain, or sealed files: signing key, log key, checkpoint, API key
    settings.py  the user's policy and remote server, persisted (network.json)
    install.py   models.pull: a pulled GGUF moved into the models folder and registered

Modules are imported directly (``from daemon.egress.gateway import Gateway``), so that
importing the guard or the policy does not pull in the HTTP stack.
"""
