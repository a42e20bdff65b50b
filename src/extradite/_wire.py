"""Frame format and message vocabulary shared by both ends of a channel.

A frame (on the socket or in the shared ring) is a fixed header followed by `body_len` bytes:

    offset size field
    0      1    version    VERSION; anything else is a protocol error
    1      1    kind       REQUEST | REPLY | ERROR | RELEASE
    2      2    flags      FLAG_SHM: the body starts with a segment table
                           FLAG_PAGE: the last descriptor is the shared polling page
                           FLAG_PLAIN: a request of plain scalars only (see below)
                           FLAG_SCALAR: a reply whose body is one scalar, not a pickle
    4      4    request_id id of the request; a reply carries its request's id
    8      4    chain      call chain: requests of one chain are served on one thread
    12     4    seq        frame number in this direction (mod 2**32): frames travel either
                           through the socket or through the shared ring (see _ring),
                           and the reader merges the two streams by this number
    16     4    body_len   number of body bytes that follow

The body is a pickle (protocol 5) of a tuple whose first item is the list of
handle releases riding on this frame. With FLAG_SHM, the body is prefixed by a
segment table (see `_shm.py`) and the pickle stream has holes that are filled
from shared memory; file descriptors for new shared-memory arenas ride on the
same `sendmsg` as ancillary data.

Request bodies: (releases, op, target, name, args, kwargs, policy, extra)
                (with EXTRA_TARGET_HID in `extra`, `target` is a plain int: the
                receiver's handle id, so a call on a proxy pickles no handle)
Reply bodies:   (releases, value), or with FLAG_SCALAR the value alone in the format
                of `_scalar` (a plain scalar with no releases riding along)
Error bodies:   (releases, error_record) - see `_codec.error_record`
Release bodies: (releases,)
"""

from __future__ import annotations

import _struct as struct  # `struct` imports this and nothing more: one module less per child

VERSION = 9  # changes whenever a frame or a body changes meaning (CHANGELOG.md, "Wire format")

HEADER = struct.Struct("<BBHIIII")
HEADER_SIZE = HEADER.size

# Frame kinds.
REQUEST = 1
REPLY = 2
ERROR = 3
RELEASE = 4
WAKE = 5     # socket only, header only, no sequence number: the reader sleeps, a ring frame waits
PAD = 0      # ring only: the rest of the ring is unused, the next frame starts at its beginning

# Header flags.
FLAG_SHM = 0x1
FLAG_PAGE = 0x2  # the frame's last descriptor is the polling page (first frame of the parent; see _ring)
FLAG_PLAIN = 0x4  # a request body `_pickle.dumps` made of plain scalars: the child, which trusts
                  # its parent, loads it with `_pickle.loads` (the parent never trusts this flag)
FLAG_SCALAR = 0x8  # a reply body in the `_scalar` format: read without an unpickler, by either side

# Request operations. Each is served by the handler of the same name in `_dispatch`
# (OP_CALL by `op_call`, ...), which also says which side may serve it.
OP_CALL = 1            # target(*args, **kwargs)
OP_CALL_METHOD = 2     # getattr(target, name)(*args, **kwargs)
OP_GETATTR = 3         # getattr(target, name)
OP_SETATTR = 4         # setattr(target, name, args[0])
OP_DELATTR = 5         # delattr(target, name)
OP_BATCH = 6           # [target(*a, **k) or getattr(target, name)(*a, **k) for (a, k) in args]
OP_IMPORT = 7          # import module `target`: (its attribute path `name` by reference, the verdict
                       # of a generated proxy's check, None when it matches the live class)
OP_CONFIGURE = 8       # install policy configuration on the serving side
OP_STATS = 9           # sizes of the serving side's handle tables (tests, diagnostics)
OP_WARM_UP = 10        # prewarm: pay now what the first import would pay (`_members.warm_up`), if nothing waits
OP_TRUST = 11          # untrusted mode: args = (the names the parent loads); send everything else by handle
OP_NEXT_CHUNK = 12     # up to args[0] items of iterator `target`: (items, end) (see `_iteration`)
OP_CONCURRENCY = 13    # serve the calls that follow with concurrency args[0] ("async", "threads:N": `_concurrency`)


# `extra` flags of a request.
EXTRA_AWAIT = 0x1          # the result is awaitable: run it to completion on the serving side
EXTRA_RESULT_BY_REF = 0x2  # the result travels by reference whatever the policy says
EXTRA_TARGET_HID = 0x8     # `target` is the receiver's own handle id (a proxy going home), not an object

# Persistent ids of handles inside a pickle stream (first item of the pid tuple).
PID_HOME = 0     # (PID_HOME, hid): an object owned by the receiver, coming home
PID_OBJECT = 1   # (PID_OBJECT, hid, class_pid): an object owned by the sender
PID_CLASS = 2    # (PID_CLASS, hid, descriptor_or_None): a class owned by the sender

# Chains started by the child side set this bit so the two sides never pick the same id.
CHILD_CHAIN_BIT = 0x80000000

MAX_BODY = 0xFFFFFFFF
