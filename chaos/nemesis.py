"""The nemesis: faults on a seeded schedule, injected into the run's own processes (chaos.processes) and healed
again, each recorded as a :class:`~chaos.history.Fault`.

Kinds, taken in seeded rounds that cover every kind before any repeats; in the first round each comes alone, in
later ones a kind may come with a companion that hits other processes (TARGETS), injected at the same moment:

* ``kill-serve``: kill -9 of one `syncsvc serve` instance (requests in flight cut, its push sockets dropped by the
  kernel), restarted on the same port after a moment.
* ``kill-relay``: kill -9 of the relay, mid-transaction or not; a new relay takes the lanes once the dead one's
  leases run out (10 s).
* ``restart-redis``: kill -9 of redis-server, started again on its AOF (fsynced before each reply, so nothing
  acknowledged may be missing afterwards).
* ``pause-kafka``: SIGSTOP of the broker for a few seconds, then SIGCONT (the relay stalls, writes must not).
* ``close-push``: a graceful restart (SIGTERM) of one instance: it closes the push sockets it holds (half the
  devices') with 1001 "going away", server-side; the devices reconnect, resume, and must catch up.

Blocking process calls run in threads, so the workload's event loop keeps going while a fault is injected.
"""

from __future__ import annotations

import asyncio
import random
import time
from collections.abc import Awaitable, Callable

from chaos.history import Fault, History
from chaos.processes import Deployment, Syncsvc

KINDS = ("kill-serve", "kill-relay", "restart-redis", "pause-kafka", "close-push")


#: What each kind hurts: two faults together never hit the same processes.
TARGETS = {
    "kill-serve": "serve",
    "close-push": "serve",
    "kill-relay": "relay",
    "restart-redis": "redis",
    "pause-kafka": "kafka",
}


class Nemesis:
    """Injects faults every ``interval`` seconds (the first after ``interval``/2): one kind at a time for the first
    round (every kind once, alone), then, by the seed's choice, one or two kinds at once (on different processes:
    Redis restarted while Kafka is paused, the relay killed while an instance is down, …)."""

    def __init__(
        self, deployment: Deployment, history: History, rng: random.Random, interval: float, started: float
    ) -> None:
        self.deployment, self.history, self.rng = deployment, history, rng
        self.interval, self.started = interval, started

    def schedule(self, count: int) -> list[tuple[str, ...]]:
        """``count`` slots of fault kinds: every kind alone once in a seeded order, then rounds in other orders
        where each kind may have a companion of another target."""
        slots: list[tuple[str, ...]] = []
        while len(slots) < count:
            round_ = list(KINDS)
            self.rng.shuffle(round_)
            for kind in round_:
                others = [other for other in KINDS if TARGETS[other] != TARGETS[kind]]
                together = len(slots) >= len(KINDS) and self.rng.random() < 0.5
                slots.append((kind, self.rng.choice(others)) if together else (kind,))
        return slots[:count]

    async def run(self, seconds: float) -> None:
        """Faults for ``seconds``, as many as fit (each kind at least once when ``seconds`` allows)."""
        until = time.monotonic() + seconds
        await asyncio.sleep(self.interval / 2)
        for kinds in self.schedule(max(1, int(seconds / self.interval))):
            if time.monotonic() + 2 > until:
                return
            began = time.monotonic()
            await asyncio.gather(*(self.inject(kind) for kind in kinds))
            await asyncio.sleep(max(0.0, self.interval - (time.monotonic() - began)))

    async def inject(self, kind: str) -> None:
        fault = Fault(kind, "", self._now())
        self.history.faults.append(fault)
        actions: dict[str, Callable[[Fault], Awaitable[None]]] = {
            "kill-serve": self._kill_serve,
            "kill-relay": self._kill_relay,
            "restart-redis": self._restart_redis,
            "pause-kafka": self._pause_kafka,
            "close-push": self._close_push,
        }
        await actions[kind](fault)
        fault.healed = self._now()

    async def _kill_serve(self, fault: Fault) -> None:
        instance = self.rng.choice(self.deployment.instances)
        fault.target = instance.name
        await asyncio.to_thread(instance.kill)
        await asyncio.sleep(self.rng.uniform(0.5, 2.0))
        await asyncio.to_thread(instance.start)

    async def _close_push(self, fault: Fault) -> None:
        instance: Syncsvc = self.rng.choice(self.deployment.instances)
        fault.target = instance.name
        await asyncio.to_thread(instance.stop)
        await asyncio.to_thread(instance.start)

    async def _kill_relay(self, fault: Fault) -> None:
        fault.target = "relay"
        await asyncio.to_thread(self.deployment.relay.kill)
        await asyncio.sleep(self.rng.uniform(0.2, 1.0))
        await asyncio.to_thread(self.deployment.relay.start)

    async def _restart_redis(self, fault: Fault) -> None:
        fault.target = "redis"
        await asyncio.to_thread(self.deployment.redis.kill)
        await asyncio.sleep(self.rng.uniform(0.2, 1.0))
        await asyncio.to_thread(self.deployment.redis.start)

    async def _pause_kafka(self, fault: Fault) -> None:
        fault.target = "kafka"
        self.deployment.kafka.pause()
        try:
            await asyncio.sleep(self.rng.uniform(2.0, 4.0))
        finally:
            self.deployment.kafka.resume()

    def _now(self) -> float:
        return time.monotonic() - self.started

    async def heal(self) -> None:
        """Everything running again (a fault cut short by the end of the run leaves nothing down)."""
        if self.deployment.kafka.paused:
            self.deployment.kafka.resume()
        if self.deployment.redis.process is None or self.deployment.redis.process.poll() is not None:
            await asyncio.to_thread(self.deployment.redis.start)
        for process in [*self.deployment.instances, self.deployment.relay]:
            if not process.alive:
                await asyncio.to_thread(process.start)
