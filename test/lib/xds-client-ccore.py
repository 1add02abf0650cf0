"""A proxyless xDS client on gRPC C-core (Debian's python3-grpcio), driven over stdin/stdout.

C-core's xds resolver, XdsClient and LB policies share no code with grpc-js-xds: this is
Shoal's second independent real client. One process holds one XdsClient (C-core keeps one
per process), configured by GRPC_XDS_BOOTSTRAP_CONFIG. Run with /usr/bin/python3 (another
python3 on PATH may not see Debian's package).

Protocol: one JSON object per line on stdin, one answer per line on stdout, same "id".
  {"id": 1, "op": "call", "target": "xds:///echo:10001", "timeoutMs": 3000}
      -> {"id": 1, "ok": true, "who": "A"} or {"id": 1, "ok": false, "code": "UNAVAILABLE", "error": "..."}
  {"id": 4, "op": "burst", "target": "xds:///echo:10001", "n": 60}  (n calls at once)
      -> {"id": 4, "ok": true, "results": [{"ok": true, "who": "A"}, {"ok": false, "code": "...", "error": "..."}, ...]}
  {"id": 2, "op": "watch", "targets": ["xds:///a:1", ...]}  (open channels and start resolving) -> {"id": 2, "ok": true}
  {"id": 5, "op": "fresh", "target": "xds:///echo:10001"}  (one call on a new channel, closed after it: a new handshake)
  {"id": 6, "op": "time", "target": "...", "n": 500, "fresh": false}  (n calls in a row, each timed here)
      -> {"id": 6, "ok": true, "ms": [0.21, ...]}
SHOAL_TEST_CREDS=xds: xDS channel credentials (gRFC A29), the mTLS the agent's Clusters configure.
  {"id": 3, "op": "exit"}
C-core's own log (GRPC_TRACE, GRPC_VERBOSITY) goes to stderr; the harness reads NACKs there.
"""
import json
import os
import sys
import time

import grpc
import grpc.experimental

METHOD = '/shoal.test.Echo/Echo'
channels = {}


def new_channel(target):
    if os.environ.get('SHOAL_TEST_CREDS') == 'xds':
        return grpc.secure_channel(target, grpc.xds_channel_credentials(grpc.experimental.insecure_channel_credentials()))
    return grpc.insecure_channel(target)


def channel(target):
    ch = channels.get(target)
    if ch is None:
        ch = new_channel(target)
        channels[target] = ch
    return ch


def fresh(req):
    ch = new_channel(req['target'])
    try:
        return one_call(ch, req)
    finally:
        ch.close()


def one_call(ch, req):
    try:
        who = ch.unary_unary(METHOD)(b'hi', timeout=req.get('timeoutMs', 3000) / 1000.0)
        return {'ok': True, 'who': who.decode()}
    except grpc.RpcError as e:
        return {'ok': False, 'code': e.code().name, 'error': e.details() or ''}


def handle(req):
    op = req.get('op')
    if op == 'call':
        return one_call(channel(req['target']), req)
    if op == 'fresh':
        return fresh(req)
    if op == 'time':
        ms = []
        for _ in range(req['n']):
            t0 = time.perf_counter()
            r = fresh(req) if req.get('fresh') else one_call(channel(req['target']), req)
            if not r['ok']:
                return r
            ms.append((time.perf_counter() - t0) * 1000.0)
        return {'ok': True, 'ms': ms}
    if op == 'burst':
        stub = channel(req['target']).unary_unary(METHOD)
        timeout = req.get('timeoutMs', 3000) / 1000.0
        futures = [stub.future(b'hi', timeout=timeout) for _ in range(req['n'])]
        results = []
        for f in futures:
            try:
                results.append({'ok': True, 'who': f.result().decode()})
            except grpc.RpcError as e:
                results.append({'ok': False, 'code': e.code().name, 'error': e.details() or ''})
        return {'ok': True, 'results': results}
    if op == 'watch':
        for target in req['targets']:
            # Subscribing with try_to_connect starts the xds resolver without a call.
            channel(target).subscribe(lambda _state: None, try_to_connect=True)
        return {'ok': True}
    return {'ok': False, 'code': 'INVALID_ARGUMENT', 'error': 'unknown op %r' % (op,)}


def main():
    sys.stdout.write(json.dumps({'id': 0, 'ok': True, 'ready': True, 'grpc': grpc.__version__}) + '\n')
    sys.stdout.flush()
    for line in sys.stdin:
        line = line.strip()
        if not line:
            continue
        req = json.loads(line)
        if req.get('op') == 'exit':
            break
        out = handle(req)
        out['id'] = req.get('id')
        sys.stdout.write(json.dumps(out) + '\n')
        sys.stdout.flush()
    for ch in channels.values():
        ch.close()


if __name__ == '__main__':
    main()
