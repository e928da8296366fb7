"""Operations: metrics, the access log, rate-limited fault logs, health probes and
access control (signed URLs, bearer tokens).
"""
