"""GET /account/credits and DELETE /customers/{customerId}."""

from __future__ import annotations

from litestar import delete, get

from emulator.deps import AccountDep, RuntimeDep, path_id


@get("/account/credits", opt={"endpoint": "get_credits"})
async def get_credits(account: AccountDep) -> dict[str, int]:
    return {"creditBalance": account.credits}


@delete("/customers/{customer_id:path}", opt={"endpoint": "delete_customer"}, status_code=204)
async def delete_customer(
    customer_id: str,
    runtime: RuntimeDep,
    account: AccountDep,
) -> None:
    # Idempotent: 204 whether or not anything matched.
    runtime.store.erase_customer(account.api_key, path_id(customer_id))
