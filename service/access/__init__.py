"""Who may call the gateway and how much: apps and their keys, end-user tokens, quotas.

Genlook's key is a credit card, so browsers never see it. A browser holds the app's publishable
key (an identifier, safe to ship) plus a short-lived end-user token that the merchant's backend
minted; every limit that protects credits is enforced here, server-side.
"""
