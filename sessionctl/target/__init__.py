"""The server under test.

- ``server``: start it, wait until it answers, prepare it, check it, stop it; redaction of the
  secrets in its DSN and command line;
- ``embedded_postgres``: a throwaway local PostgreSQL for the demo and the tests.
"""
