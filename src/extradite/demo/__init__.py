"""Demo targets for extradite: small classes to extradite and to generate proxies for.

Imported only in child interpreters (a proxy never imports them).
"""
