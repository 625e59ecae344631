"""``make bench-orchestrator``: the orchestrator's own cost per step, and how many tasks one
instance holds at once. Results go to the orchestrator section of bench/RESULTS.md.

One orchestrator instance (functions-framework's ASGI server, 2 uvicorn workers as every
function is served here) in front of a fake gateway and a fake calculator agent (one process).
Every task is two model turns and one agent call: the model asks for the calculator, then
answers.

- Overhead per step: instant fakes, one task at a time; per task, the client's time minus the
  model and agent steps' own latencies (as the orchestrator measured them around each call),
  over the number of steps.
- Concurrency: the fake gateway answers each call after 1 s; 1,000 tasks sent at once, each on
  its own connection, and all must complete. Ideal time is 2 s (two model turns), so ideal
  throughput is 500 tasks/s. Measured twice on one instance: cold (every connection, to it and
  from it, opened inside the burst), then warm (the instance's pool to the gateway kept from
  the cold burst, the client's connections opened one after another just before).
- In process (``--profile``): the orchestrator's ASGI app driven with ASGI scopes, no server,
  CPU per task in bursts of 500 (one worker's share of 1,000): the steadiest figure here.
- Model client: the anthropic SDK (AsyncAnthropic with base_url) against the wire
  (``shared.aio``, what the orchestrator uses), per call against the instant fake, and import
  time.

The fakes and the load client stand for other machines but share this machine's cores with the
orchestrator, so both are plain asyncio streams with answers and requests encoded once; their
CPU is reported beside the orchestrator's.

Modules, one job each: ``streams`` (HTTP/1.1 on asyncio streams, for the fakes and the load
client), ``fakes`` (the fake gateway and calculator), ``processes`` (starting and stopping the
fakes and the orchestrator), ``load`` (the measurements over a served orchestrator),
``in_process`` (the ASGI app driven without a server), ``report`` (the RESULTS.md section) and
``__main__`` (the command line).
"""
