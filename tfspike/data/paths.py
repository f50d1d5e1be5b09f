"""Where datasets live: ``--data_dir``, then ``TFSPIKE_DATA``, then the public download."""

import os
import socket

from tfspike.errors import MissingDataError

ENV_DATA = "TFSPIKE_DATA"
ENV_OFFLINE = "TFSPIKE_OFFLINE"  # set to 1 to skip download attempts (tests, air-gapped machines)


def data_dir_from(data_dir=None):
    """The local data folder: the explicit argument, else ``$TFSPIKE_DATA``, else ``None``."""
    d = data_dir or os.environ.get(ENV_DATA) or None
    return os.path.expanduser(d) if d else None


def find_local(data_dir, *relpaths):
    """Return ``data_dir/relpath`` for the first relpath that exists, else ``None``."""
    d = data_dir_from(data_dir)
    if d is None:
        return None
    for rel in relpaths:
        p = os.path.join(d, rel)
        if os.path.exists(p):
            return p
    return None


def downloads_allowed():
    return os.environ.get(ENV_OFFLINE, "0").lower() not in ("1", "true", "yes")


def host_reachable(host, timeout=3.0):
    """Whether a TCP connection to ``host`` = ``(name, port)`` opens within ``timeout`` seconds."""
    try:
        socket.create_connection(host, timeout=timeout).close()
        return True
    except OSError:
        return False


def remote_available(what, local, host, hint=None):
    """``(ok, reason)``: whether ``what`` is here already or can be downloaded now (fails fast offline).

    Args:
        what: the resource, for the message (e.g. ``"Oxford Flowers 102"``).
        local: a path (present if it exists) or a callable returning where the local copy is, or
            ``None`` when there is none.
        host: ``(name, port)`` of the download server, probed with :func:`host_reachable`.
        hint: what to do instead, appended to the unreachable-host reason (e.g. an offline flag).

    Returns:
        ``(True, "<what> found at <where>")``, ``(True, "<what> downloadable from <host>")``, or
        ``(False, reason)`` naming why not (downloads disabled by ``TFSPIKE_OFFLINE=1``, host unreachable).
    """
    where = local() if callable(local) else (local if local and os.path.exists(local) else None)
    if where:
        return True, f"{what} found at {where}"
    if not downloads_allowed():
        return False, f"{what}: not available locally and downloads are disabled ({ENV_OFFLINE}=1)"
    if not host_reachable(host):
        return False, f"{what}: not available locally and {host[0]} is unreachable" + (f"; {hint}" if hint else "")
    return True, f"{what} downloadable from {host[0]}"


def missing_data(name, relpath, data_dir, download_error=None):
    """The one-line error for a dataset that is neither local nor downloadable."""
    d = data_dir_from(data_dir)
    where = (f"{os.path.join(d, relpath)} does not exist" if d
             else f"no local copy (set --data_dir or {ENV_DATA} to a folder containing {relpath})")
    if download_error is None:
        tail = f"downloads are disabled ({ENV_OFFLINE}=1)" if not downloads_allowed() else "no download source"
    else:
        msg = str(download_error).strip().splitlines()
        tail = f"download failed: {msg[-1] if msg else type(download_error).__name__}"
    return MissingDataError(f"{name} not found: {where}; {tail}. "
                            f"Put the files at <data_dir>/{relpath} and pass --data_dir or set {ENV_DATA}.")


def load_or_download(name, relpath, data_dir, read_local, download):
    """``read_local(path)`` if ``<data_dir>/<relpath>`` exists, else ``download()``; a clear error if both fail."""
    p = find_local(data_dir, relpath)
    if p is not None:
        return read_local(p)
    if not downloads_allowed():
        raise missing_data(name, relpath, data_dir)
    try:
        return download()
    except Exception as e:  # noqa: BLE001 - any network/HTTP/IO failure becomes one clear line
        raise missing_data(name, relpath, data_dir, download_error=e) from e
