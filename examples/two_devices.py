"""Two devices of one user syncing through syncsvc with the reference client (``syncsvc.client``).

    python examples/two_devices.py http://127.0.0.1:8080 <identity pool id>

The pool must allow guests and have push on (SetIdentityPoolConfiguration with PushSync). The phone listens on its
WebSocket; the tablet's change wakes it and it pulls; then both change the same record and the phone resolves the
conflict by keeping both values.
"""

from __future__ import annotations

import asyncio
import sys

from syncsvc.client import Resolution, SyncClient, SyncConflict, SyncResult


def keep_both(dataset: str, conflicts: list[SyncConflict]) -> list[Resolution]:
    return [c.resolve_with_value(f"{c.remote.value}+{c.local.value}") for c in conflicts]


async def main(endpoint: str, pool_id: str) -> None:
    phone = await SyncClient.guest(endpoint, pool_id)
    tablet = SyncClient(endpoint, pool_id, phone.identity_id, phone.token_provider)  # same user, second device
    async with phone, tablet:
        for device in (phone, tablet):
            await device.register_device()
            await device.subscribe("settings")
        woken = asyncio.Event()

        def on_change(dataset: str, result: SyncResult) -> None:
            print(f"phone: woken, pulled {dataset} at sync count {result.sync_count}: {phone.values(dataset)}")
            woken.set()

        async with phone.listening(on_change=on_change) as listener:
            await listener.wait_resumed()
            tablet.put("settings", "theme", "dark")
            await tablet.synchronize("settings")
            print("tablet: wrote theme=dark")
            await asyncio.wait_for(woken.wait(), timeout=10)

        tablet.put("settings", "theme", "solarized")
        phone.put("settings", "theme", "light")
        await tablet.synchronize("settings")
        result = await phone.synchronize("settings", on_conflict=keep_both)
        await tablet.synchronize("settings")
        print(
            f"conflict resolved in {result.attempts} attempt(s): phone {phone.values('settings')}, "
            f"tablet {tablet.values('settings')}"
        )


if __name__ == "__main__":
    asyncio.run(main(sys.argv[1], sys.argv[2]))
