#!/usr/bin/env python3
"""Smoke test of a running harness server over raw JSON-RPC (stdlib only).

    smoke.py 'READY {"url": ..., ...}'      # the whole READY line, or
    smoke.py '{"url": ...}'                  # just its JSON, or
    smoke.py http://127.0.0.1:PORT           # url (db backhaul, admin/admin)

Proof that the harness works and a readable reference for the Rust connector:
it only resolves records by business key (party code, product code, location
code, sale reference) and performs the return flow of the reference (§5.2):

  A. SO-1001 / CUST-1001: return 1 x SKU-001, scrap variant (the inventory
     move is redirected to SCRAP) -> return sale processing, return shipment
     done, SKU-001 in SCRAP +1 (WH unchanged), credit note posted, -27.50,
     sequence_type_cache "credit_note".
  B. SO-1002 / CUST-1001: return 2 x SKU-003, split: 1 restocked, 1 scrapped
     (inventory move quantity reduced, a copy sent to SCRAP) -> WH +1 and
     SCRAP +1 for SKU-003, credit note -27.50.

Run it against a fresh `serve` (each run restores the same snapshot); stock
checks are relative to the quantities read at the start of each scenario.
"""

import base64
import json
import sys
import time
import urllib.error
import urllib.request
from decimal import Decimal


class RPCError(Exception):
    pass


class Tryton:
    """Minimal JSON-RPC client: session auth, context on every call,
    Decimal/date (de)serialisation."""

    def __init__(self, url, database, user, password):
        self.url = url.rstrip('/')
        self.database = database
        self.user = user
        self.calls = 0
        # common.db.login -> [user_id, session_key, bus_url]
        uid, key = self._post(f'{self.url}/{database}/rpc/', 'common.db.login',
            [user, {'password': password}, 'en'])[:2]
        token = base64.b64encode(f'{user}:{uid}:{key}'.encode()).decode()
        self.auth = f'Session {token}'
        self.uid = uid
        prefs = self.call('model.res.user.get_preferences', True)
        # The server does not add user preferences by itself: send them.
        self.ctx = {'company': prefs['company'],
            'employee': prefs.get('employee'), 'language': 'en'}

    @staticmethod
    def _encode(obj):
        if isinstance(obj, Decimal):
            return {'__class__': 'Decimal', 'decimal': str(obj)}
        raise TypeError(repr(obj))

    @staticmethod
    def _decode(obj):
        cls = obj.get('__class__')
        if cls == 'Decimal':
            return Decimal(obj['decimal'])
        return obj

    def _post(self, url, method, params, auth=None):
        self.calls += 1
        body = json.dumps({'id': self.calls, 'method': method,
                'params': params}, default=self._encode).encode()
        req = urllib.request.Request(url, data=body,
            headers={'Content-Type': 'application/json'})
        if auth:
            req.add_header('Authorization', auth)
        with urllib.request.urlopen(req, timeout=120) as resp:
            data = json.loads(resp.read(), object_hook=self._decode)
        # Errors come back with HTTP 200 and an "error" member.
        if 'error' in data:
            raise RPCError(f'{method}{params!r}: {data["error"]!r}')
        return data['result']

    def call(self, method, *args, ctx=None):
        """model.X.method with positional args; context is always last."""
        context = dict(getattr(self, 'ctx', {}), **(ctx or {}))
        return self._post(f'{self.url}/{self.database}/rpc/', method,
            [*args, context], auth=getattr(self, 'auth', None))

    # helpers shaped like the ORM methods
    def search_read(self, model, domain, fields, order=None, limit=None,
            ctx=None):
        return self.call(f'model.{model}.search_read', domain, 0, limit,
            order, fields, ctx=ctx)

    def one(self, model, domain, fields):
        rows = self.search_read(model, domain, fields, limit=2)
        assert len(rows) == 1, (model, domain, rows)
        return rows[0]

    def read(self, model, ids, fields, ctx=None):
        return self.call(f'model.{model}.read', ids, fields, ctx=ctx)


def check(cond, msg):
    if not cond:
        raise AssertionError(msg)
    print(f'  ok: {msg}')


def parse_target(arg):
    arg = arg.strip()
    if arg.startswith('READY '):
        arg = arg[len('READY '):]
    if arg.startswith('{'):
        ready = json.loads(arg)
    else:
        ready = {'url': arg}
    ready.setdefault('database', 'backhaul')
    ready.setdefault('user', 'admin')
    ready.setdefault('password', 'admin')
    ready.setdefault('warehouse', 'WH')
    ready.setdefault('scrap_location', 'SCRAP')
    return ready


def stock(t, product_id, location_id):
    # quantity is computed for the locations in the context (children
    # included), up to today.
    row, = t.read('product.product', [product_id], ['quantity'],
        ctx={'locations': [location_id]})
    return row['quantity']


def create_return(t, orig_reference, party_code, product_code, quantity,
        rma):
    """Steps 1-4 of §5.2: negative-quantity sale pointing at the original."""
    party = t.one('party.party', [('code', '=', party_code)], ['id', 'name'])
    product = t.one('product.product', [('code', '=', product_code)],
        ['id', 'default_uom'])
    orig = t.one('sale.sale', [('reference', '=', orig_reference),
            ('party', '=', party['id'])],
        ['id', 'number', 'state', 'payment_term', 'invoice_address',
            'shipment_address'])
    # Price and taxes are taken from the original line, not recomputed.
    orig_line = t.one('sale.line', [('sale', '=', orig['id']),
            ('product', '=', product['id'])],
        ['quantity', 'unit', 'unit_price', 'taxes'])
    check(quantity <= orig_line['quantity'],
        f'{orig_reference} sold {orig_line["quantity"]} x {product_code}')

    rid, = t.call('model.sale.sale.create', [{
            'party': party['id'],
            'invoice_address': orig['invoice_address'],
            'shipment_address': orig['shipment_address'],
            'payment_term': orig['payment_term'],
            'invoice_method': 'order',
            'shipment_method': 'order',
            'origin': f'sale.sale,{orig["id"]}',
            'reference': rma,
            'description': 'Customer return',
            'lines': [['create', [{
                'type': 'line',
                'product': product['id'],
                'quantity': -float(quantity),
                'unit': orig_line['unit'],
                'unit_price': orig_line['unit_price'],
                'taxes': [['add', orig_line['taxes']]],
                }]]],
            }])
    t.call('model.sale.sale.quote', [rid])
    # confirm queues sale.process; without a worker it runs inline, so the
    # return shipment and the draft credit note exist when this returns.
    t.call('model.sale.sale.confirm', [rid])
    sale, = t.read('sale.sale', [rid], ['number', 'state', 'shipment_returns',
            'shipments', 'invoices', 'total_amount'])
    check(sale['state'] == 'processing',
        f'return sale {rma} confirmed -> {sale["state"]}')
    check(len(sale['shipment_returns']) == 1 and not sale['shipments'],
        f'one return shipment, no out shipment: {sale["shipment_returns"]}')
    check(len(sale['invoices']) == 1, f'one credit note: {sale["invoices"]}')
    return sale, product


def finish(t, sale, expected_total):
    """Post the credit note and check the end state."""
    invoice_id, = sale['invoices']
    t.call('model.account.invoice.post', [invoice_id])
    inv, = t.read('account.invoice', [invoice_id], ['number', 'state', 'type',
            'total_amount', 'sequence_type_cache'])
    check(inv['state'] == 'posted', f'credit note {inv["number"]} posted')
    check(inv['total_amount'] == Decimal(expected_total),
        f'credit note total {inv["total_amount"]} == {expected_total}')
    check(inv['sequence_type_cache'] == 'credit_note'
        and inv['type'] == 'out', 'sequence_type_cache == credit_note')
    shipment, = t.read('stock.shipment.out.return', sale['shipment_returns'],
        ['state'])
    check(shipment['state'] == 'done', 'return shipment done')
    again, = t.read('sale.sale', [sale['id']], ['state'])
    check(again['state'] == 'processing',
        f'return sale state {again["state"]}')
    return inv


def main():
    if len(sys.argv) != 2:
        sys.exit(__doc__)
    target = parse_target(sys.argv[1])
    started = time.monotonic()
    t = Tryton(target['url'], target['database'], target['user'],
        target['password'])
    print(f'logged in as uid {t.uid}, context {t.ctx}')

    wh = t.one('stock.location', [('code', '=', target['warehouse']),
            ('type', '=', 'warehouse')],
        ['id', 'input_location', 'storage_location', 'waste_locations'])
    scrap = t.one('stock.location', [('code', '=', target['scrap_location'])],
        ['id', 'type'])
    check(scrap['type'] == 'lost_found'
        and scrap['id'] in wh['waste_locations'],
        'SCRAP is lost_found and a waste location of WH')

    # --- A: 1 x SKU-001 from SO-1001, scrapped -------------------------------
    print('A: SO-1001 return 1 x SKU-001 to SCRAP')
    t0 = time.monotonic()
    sku1 = t.one('product.product', [('code', '=', 'SKU-001')], ['id'])['id']
    wh_before, scrap_before = stock(t, sku1, wh['id']), stock(t, sku1,
        scrap['id'])
    sale, product = create_return(t, 'SO-1001', 'CUST-1001', 'SKU-001', 1,
        'RMA-SMOKE-A')
    shipment_id, = sale['shipment_returns']
    # receive: incoming moves customer -> WH/IN done; draft inventory moves
    # IN -> STO created.
    t.call('model.stock.shipment.out.return.receive', [shipment_id])
    shp, = t.read('stock.shipment.out.return', [shipment_id],
        ['state', 'inventory_moves'])
    check(shp['state'] == 'received', 'return shipment received')
    move_id, = shp['inventory_moves']
    # Scrap: redirect the draft inventory move. Allowed targets: children of
    # the warehouse storage, or a lost_found location in WH's waste_locations.
    t.call('model.stock.move.write', [move_id],
        {'to_location': scrap['id']})
    t.call('model.stock.shipment.out.return.do', [shipment_id])
    finish(t, sale, '-27.50')
    check(stock(t, sku1, scrap['id']) == scrap_before + 1,
        f'SKU-001 in SCRAP {scrap_before} -> {scrap_before + 1}')
    check(stock(t, sku1, wh['id']) == wh_before,
        f'SKU-001 in WH unchanged at {wh_before}')
    print(f'A done in {time.monotonic() - t0:.1f} s')

    # --- B: 2 x SKU-003 from SO-1002, one restocked and one scrapped ----------
    print('B: SO-1002 return 2 x SKU-003, split 1 to STO / 1 to SCRAP')
    t0 = time.monotonic()
    sku3 = t.one('product.product', [('code', '=', 'SKU-003')], ['id'])['id']
    wh_before, scrap_before = stock(t, sku3, wh['id']), stock(t, sku3,
        scrap['id'])
    sale, product = create_return(t, 'SO-1002', 'CUST-1001', 'SKU-003', 2,
        'RMA-SMOKE-B')
    shipment_id, = sale['shipment_returns']
    t.call('model.stock.shipment.out.return.receive', [shipment_id])
    shp, = t.read('stock.shipment.out.return', [shipment_id],
        ['inventory_moves'])
    move_id, = shp['inventory_moves']
    move, = t.read('stock.move', [move_id], ['quantity', 'to_location'])
    check(move['quantity'] == 2.0, 'one inventory move of 2')
    # Split: keep 1 on the original move (to STO), copy 1 to SCRAP. The copy
    # keeps shipment and origin, so it is an inventory move of the same
    # shipment, in draft.
    t.call('model.stock.move.write', [move_id], {'quantity': 1.0})
    copy_id, = t.call('model.stock.move.copy', [move_id],
        {'to_location': scrap['id'], 'quantity': 1.0})
    shp, = t.read('stock.shipment.out.return', [shipment_id],
        ['inventory_moves'])
    check(sorted(shp['inventory_moves']) == sorted([move_id, copy_id]),
        f'copied move {copy_id} is an inventory move of the shipment')
    # do checks incoming == inventory quantities per product (a UserWarning
    # otherwise): 1 + 1 == 2, so no warning.
    t.call('model.stock.shipment.out.return.do', [shipment_id])
    moves = t.read('stock.move', [move_id, copy_id], ['state', 'to_location',
            'quantity'])
    check(all(m['state'] == 'done' for m in moves), 'both moves done')
    finish(t, sale, '-27.50')
    check(stock(t, sku3, scrap['id']) == scrap_before + 1,
        f'SKU-003 in SCRAP {scrap_before} -> {scrap_before + 1}')
    check(stock(t, sku3, wh['id']) == wh_before + 1,
        f'SKU-003 in WH {wh_before} -> {wh_before + 1}')
    print(f'B done in {time.monotonic() - t0:.1f} s')

    print(f'SMOKE OK ({t.calls} calls, {time.monotonic() - started:.1f} s)')


if __name__ == '__main__':
    main()
