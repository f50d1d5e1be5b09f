"""Scale out on ``tf.distribute``: the strategy of ``--distribute``, logical CPU devices, the chief.

What a strategy synchronises (data-parallel, synchronous): every replica holds the same weights; each
step, the global batch (``--batch_size``) is split over the replicas, each replica computes gradients
on its share, the gradients are summed across replicas (an all-reduce) and every replica applies the
same update. Keras divides its own losses by the number of replicas so that this sum is the gradient of
the global-batch mean; Keras metrics are reduced across replicas. State a family updates by hand inside
its train step (TTFS window widths) must be reduced explicitly: see :func:`replica_max`.

TensorFlow is imported inside functions, so that the CLI stays instant.
"""

import os

from tfspike.errors import UserError

KINDS = ("none", "mirrored", "multi_worker")


def cluster_source():
    """Where a ``multi_worker`` run finds its cluster: ``"TF_CONFIG"``, ``"slurm"`` (``SLURM_JOB_ID`` set,
    no ``TF_CONFIG``) or None. Reads only the environment (no TensorFlow)."""
    if os.environ.get("TF_CONFIG"):
        return "TF_CONFIG"
    if os.environ.get("SLURM_JOB_ID"):
        return "slurm"
    return None


def check_kind(kind):
    """Raise a one-line :class:`UserError` if ``kind`` is not a strategy name, or is ``multi_worker``
    without a cluster to join (no TensorFlow)."""
    if kind not in KINDS:
        raise UserError(f"--distribute must be one of {', '.join(KINDS)}, got {kind!r}")
    if kind == "multi_worker" and cluster_source() is None:
        raise UserError("--distribute=multi_worker needs a cluster: set TF_CONFIG (see README, Scale out) "
                        "or run under Slurm (SLURM_JOB_ID)")


def split_cpu(n):
    """Split the physical CPU into ``n`` logical devices (``/cpu:0`` … ``/cpu:{n-1}``), so a CPU-only
    machine can run the ``mirrored`` path.

    Must run before TensorFlow initialises its devices (before the first op, device listing or
    strategy). Calling it again with the same ``n`` is a no-op.

    Args:
        n: the number of logical CPU devices (>= 1).

    Returns:
        the logical CPU devices' names.

    Raises:
        UserError: TensorFlow's devices are already initialised with another layout (one line).
    """
    import tensorflow as tf

    if n < 1:
        raise UserError(f"--cpu_devices must be >= 1, got {n}")
    cpu = tf.config.list_physical_devices("CPU")[0]
    current = tf.config.get_logical_device_configuration(cpu)
    if current is not None and len(current) == n:
        return [d.name for d in tf.config.list_logical_devices("CPU")]
    try:
        tf.config.set_logical_device_configuration(cpu, [tf.config.LogicalDeviceConfiguration()] * n)
    except RuntimeError:
        raise UserError(f"--cpu_devices={n}: TensorFlow's devices are already initialised; split the CPU "
                        f"before anything runs on TensorFlow (at the start of the process)") from None
    return [d.name for d in tf.config.list_logical_devices("CPU")]


def make_strategy(kind, cpu_devices=None):
    """The ``tf.distribute`` strategy of ``--distribute``.

    Args:
        kind: ``"none"`` → the default strategy (``tf.distribute.get_strategy()``, one device);
            ``"mirrored"`` → ``tf.distribute.MirroredStrategy`` over the local GPUs, or with
            ``cpu_devices=N`` over N logical CPU devices (:func:`split_cpu`); ``"multi_worker"`` →
            ``tf.distribute.MultiWorkerMirroredStrategy`` with the cluster of ``TF_CONFIG``, or of
            ``tf.distribute.cluster_resolver.SlurmClusterResolver()`` under Slurm without ``TF_CONFIG``.
        cpu_devices: split the CPU into this many logical devices first (None: leave it as it is).

    Returns:
        a ``tf.distribute.Strategy``; build and compile models inside ``strategy.scope()``.

    Raises:
        UserError: an unknown kind, ``multi_worker`` without a cluster, or a CPU split that comes too late.
    """
    check_kind(kind)
    if cpu_devices:
        split_cpu(cpu_devices)
    import tensorflow as tf

    if kind == "none":
        return tf.distribute.get_strategy()
    if kind == "mirrored":
        if cpu_devices and not tf.config.list_logical_devices("GPU"):
            return tf.distribute.MirroredStrategy([f"/cpu:{i}" for i in range(cpu_devices)])
        return tf.distribute.MirroredStrategy()
    if cluster_source() == "TF_CONFIG":
        return tf.distribute.MultiWorkerMirroredStrategy()
    return tf.distribute.MultiWorkerMirroredStrategy(
        cluster_resolver=tf.distribute.cluster_resolver.SlurmClusterResolver())


def is_chief(strategy):
    """True in the process that writes results, plots, logs and checkpoints: a single-process strategy,
    or the chief (worker 0 when the cluster has no chief task) of a multi-worker one."""
    resolver = getattr(strategy, "cluster_resolver", None)
    if resolver is None or not getattr(resolver, "task_type", None):
        return True
    task_type, task_id = resolver.task_type, resolver.task_id
    if task_type == "chief":
        return True
    has_chief = "chief" in (resolver.cluster_spec().as_dict() or {})
    return task_type == "worker" and task_id == 0 and not has_chief


def num_replicas():
    """Replicas in sync of the current strategy (1 outside any strategy)."""
    import tensorflow as tf

    return tf.distribute.get_strategy().num_replicas_in_sync


def scale_for_replicas(loss):
    """A hand-written per-replica loss (a mean over the replica's share of the batch) divided by the number
    of replicas in sync, so that the all-reduced *sum* of the replicas' gradients is the gradient of the
    global-batch mean (what Keras does for its own compiled losses). Unchanged outside a strategy."""
    n = num_replicas()
    return loss if n == 1 else loss / n


def replica_max(value):
    """The maximum of ``value`` (a tensor of any shape) over all replicas, elementwise, inside a replica
    context of a strategy with several replicas; ``value`` itself otherwise.

    ``tf.distribute.ReduceOp`` has only SUM and MEAN, so this gathers every replica's value
    (``ReplicaContext.all_gather``) and takes the max: the same result on every replica.
    """
    import tensorflow as tf

    ctx = tf.distribute.get_replica_context()
    if ctx is None or ctx.num_replicas_in_sync == 1:
        return value
    return tf.reduce_max(ctx.all_gather(tf.expand_dims(value, 0), axis=0), axis=0)
