"""HTTP: the app factory, routes, conditional and range requests, errors, pages and
the middleware that shapes responses. A thin layer over ``gateway.store``.
"""
