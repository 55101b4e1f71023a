"""One of two processes joined by `jax.distributed`; `tests/test_multiprocess.py` starts both.

Usage: `python distributed_worker.py PROCESS_ID NUM_PROCESSES PORT OUT.npz`. Each process owns 2
host CPU devices; the global mesh spans all 4. Params are FSDP-sharded across both processes, the
batch is split across them, and the run of `distributed_problem.train` is gathered and saved.
"""

import os
import sys

os.environ["XLA_FLAGS"] = (
    os.environ.get("XLA_FLAGS", "") + " --xla_force_host_platform_device_count=2"
).strip()

import jax
import numpy as np
import optax
from jax.experimental import multihost_utils
from jax.sharding import AxisType, NamedSharding
from jax.sharding import PartitionSpec as P

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import distributed_problem as problem


def main(process_id: int, num_processes: int, port: int, out: str) -> None:
    jax.config.update("jax_enable_x64", True)
    jax.config.update("jax_numpy_rank_promotion", "raise")
    jax.config.update("jax_cpu_collectives_implementation", "gloo")
    jax.distributed.initialize(
        coordinator_address=f"127.0.0.1:{port}",
        num_processes=num_processes,
        process_id=process_id,
        initialization_timeout=60,
    )
    assert jax.process_count() == num_processes and len(jax.devices()) == 2 * num_processes
    mesh = jax.make_mesh((len(jax.devices()),), ("devices",), axis_types=(AxisType.Explicit,))
    n = mesh.devices.size

    def spec(p):  # FSDP: shard the first dimension the mesh divides
        for d, size in enumerate(p.shape):
            if size % n == 0:
                return P(*([None] * d), "devices")
        return P()

    params, x, y = problem.make_problem()
    shardings = jax.tree.map(lambda p: NamedSharding(mesh, spec(p)), params)

    def global_array(host, sharding):
        # Each process supplies only the shards its own devices hold.
        return jax.make_array_from_callback(host.shape, sharding, lambda index: host[index])

    tx = problem.make_tx()
    with jax.set_mesh(mesh):
        params = jax.tree.map(global_array, params, shardings)
        batch = NamedSharding(mesh, P("devices"))
        x, y = global_array(x, batch), global_array(y, batch)
        state_shardings = optax.tree_map_params(
            tx,
            lambda _, s: s,
            jax.eval_shape(tx.init, params),
            shardings,
            transform_non_params=lambda _: NamedSharding(mesh, P()),
        )
        init = jax.jit(tx.init, out_shardings=state_shardings)
        gather = lambda p: jax.sharding.reshard(p, P())
        final, slow = problem.train(params, x, y, tx, gather, init)
        local_w1 = {d.id for d in final["w1"].sharding.addressable_devices}
        assert final["w1"].sharding.spec == P("devices", None), final["w1"].sharding
        assert len(local_w1) == 2, local_w1  # this process holds half of w1, not all of it
        final, slow = multihost_utils.process_allgather((final, slow), tiled=True)
    np.savez(
        out,
        **{f"params/{k}": v for k, v in final.items()},
        **{f"slow/{k}": v for k, v in slow.items()},
    )
    jax.distributed.shutdown()


if __name__ == "__main__":
    main(int(sys.argv[1]), int(sys.argv[2]), int(sys.argv[3]), sys.argv[4])
