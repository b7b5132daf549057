"""Usage: what each account, app, end user and product spent, by UTC day, and the alerts on
balances and daily caps (docs/usage.md)."""
