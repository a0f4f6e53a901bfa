"""The nemesis: faults on a seeded schedule, injected into the run's own processes (chaos.processes) and healed
again, each recorded as a :class:`~chaos.history.Fault`.

Kinds, taken in seeded rounds that cover every kind before any repeats; in the first round each comes alone, in
later ones a kind may come with a companion that hits other processes (TARGETS), injected at the same moment:

* ``kill-serve``: kill -9 of one `syncsvc serve` instance (requests in flight cut, its push sockets dropped by the
  kernel), restarted on the same port after a moment.
* ``kill-relay``: kill -9 of one of the two relays, mid-transaction or not, restarted after a moment; if it held
  lanes, a relay takes them once its leases run out (10 s).
* ``restart-redis``: kill -9 of redis-server, started again on its AOF (fsynced before each reply, so nothing
  acknowledged may be missing afterwards).
* ``pause-kafka``: SIGSTOP of the broker for a few seconds, then SIGCONT (the relay stalls, writes must not).
* ``close-push``: a graceful restart (SIGTERM) of one instance: it closes the push sockets it holds (half the
  devices') with 1001 "going away", server-side; the devices reconnect, resume, and must catch up.

And from the second round on (EXTRA_KINDS: not required of a short run), hangs instead of crashes, where a late
answer or a late commit is what can go wrong:

* ``pause-redis``: SIGSTOP of redis-server for a few seconds (commands time out in the instances: 503s, and writes
  that may still apply once it resumes), then SIGCONT.
* ``pause-serve``: SIGSTOP of one instance for a few seconds, past the devices' call timeout (they fail over; what
  they sent may commit when it resumes, after they gave up), then SIGCONT.
* ``pause-relay``: SIGSTOP of one relay for 12 to 15 s, past its 10 s leases: the other relay takes its lanes, and
  the paused one resumes as a zombie in the middle of what it was doing, which Kafka's transactional fencing must
  stop from publishing anything a second time.

Blocking process calls run in threads, so the workload's event loop keeps going while a fault is injected.
"""

from __future__ import annotations

import asyncio
import random
import signal
import subprocess
import time
from collections.abc import Awaitable, Callable

from chaos.history import Fault, History
from chaos.processes import Deployment, Syncsvc

KINDS = ("kill-serve", "kill-relay", "restart-redis", "pause-kafka", "close-push")
EXTRA_KINDS = ("pause-redis", "pause-serve", "pause-relay")

#: What each kind hurts: two faults together never hit the same processes.
TARGETS = {
    "kill-serve": "serve",
    "close-push": "serve",
    "pause-serve": "serve",
    "kill-relay": "relay",
    "pause-relay": "relay",
    "restart-redis": "redis",
    "pause-redis": "redis",
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
        #: set once every kind was injected once (the load goes on until then)
        self.first_round = asyncio.Event()
        #: processes stopped by SIGSTOP right now (``heal`` resumes any a cut-short fault left)
        self.paused: list[subprocess.Popen[bytes]] = []

    def schedule(self, count: int) -> list[tuple[str, ...]]:
        """``count`` slots of fault kinds: every kind alone once in a seeded order, then rounds in other orders
        where each kind may have a companion of another target."""
        slots: list[tuple[str, ...]] = []
        while len(slots) < count:
            first = not slots
            round_ = list(KINDS if first else KINDS + EXTRA_KINDS)
            self.rng.shuffle(round_)
            for kind in round_:
                others = [other for other in KINDS + EXTRA_KINDS if TARGETS[other] != TARGETS[kind]]
                together = not first and self.rng.random() < 0.5
                slots.append((kind, self.rng.choice(others)) if together else (kind,))
        return slots[:count]

    async def run(self, seconds: float) -> None:
        """Faults for ``seconds``, as many as fit, but the first round whole (every kind once: the load waits for
        it, see ``first_round``, on a machine where restarts are slow); sets ``first_round`` after it."""
        until = time.monotonic() + seconds
        try:
            await asyncio.sleep(self.interval / 2)
            for number, kinds in enumerate(self.schedule(max(len(KINDS), int(seconds / self.interval)))):
                if number == len(KINDS):
                    self.first_round.set()
                if number >= len(KINDS) and time.monotonic() + 2 > until:
                    return
                began = time.monotonic()
                await asyncio.gather(*(self.inject(kind) for kind in kinds))
                await asyncio.sleep(max(0.0, self.interval - (time.monotonic() - began)))
        finally:
            self.first_round.set()

    async def inject(self, kind: str) -> None:
        fault = Fault(kind, "", self._now())
        self.history.faults.append(fault)
        actions: dict[str, Callable[[Fault], Awaitable[None]]] = {
            "kill-serve": self._kill_serve,
            "kill-relay": self._kill_relay,
            "restart-redis": self._restart_redis,
            "pause-kafka": self._pause_kafka,
            "close-push": self._close_push,
            "pause-redis": self._pause_redis,
            "pause-serve": self._pause_serve,
            "pause-relay": self._pause_relay,
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
        relay = self.rng.choice(self.deployment.relays)
        fault.target = relay.name
        await asyncio.to_thread(relay.kill)
        await asyncio.sleep(self.rng.uniform(0.2, 1.0))
        await asyncio.to_thread(relay.start)

    async def _pause_relay(self, fault: Fault) -> None:
        relay = self.rng.choice(self.deployment.relays)
        fault.target = relay.name
        await self._hang(relay.process, 12.0, 15.0)

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

    async def _pause_redis(self, fault: Fault) -> None:
        fault.target = "redis"
        await self._hang(self.deployment.redis.process)

    async def _pause_serve(self, fault: Fault) -> None:
        instance = self.rng.choice(self.deployment.instances)
        fault.target = instance.name
        await self._hang(instance.process)

    async def _hang(self, process: subprocess.Popen[bytes] | None, least: float = 3.0, most: float = 7.0) -> None:
        """SIGSTOP for ``least`` to ``most`` seconds (by default: past the devices' 5 s call timeout, sometimes),
        then SIGCONT."""
        assert process is not None
        self.paused.append(process)
        process.send_signal(signal.SIGSTOP)
        try:
            await asyncio.sleep(self.rng.uniform(least, most))
        finally:
            process.send_signal(signal.SIGCONT)
            self.paused.remove(process)

    def _now(self) -> float:
        return time.monotonic() - self.started

    async def heal(self) -> None:
        """Everything running again (a fault cut short by the end of the run leaves nothing down)."""
        if self.deployment.kafka.paused:
            self.deployment.kafka.resume()
        for stopped in self.paused:
            stopped.send_signal(signal.SIGCONT)
        if self.deployment.redis.process is None or self.deployment.redis.process.poll() is not None:
            await asyncio.to_thread(self.deployment.redis.start)
        for process in [*self.deployment.instances, *self.deployment.relays]:
            if not process.alive:
                await asyncio.to_thread(process.start)
