#!/usr/bin/env python3
"""Seed a freshly initialised Tryton 8.0 database for Backhaul's integration tests.

Run by `prepare` with the venv's python, through proteus in *direct* mode
(trytond imported in-process, no server running):

    python seed.py --config trytond.conf --database backhaul --facts facts.json

Everything the hub uses is created under a fixed business key (party code,
product code, location code, sale reference): the hub never relies on ids.
Nothing random is written. Dates are derived from the first day of the current
month only, so two runs in the same month give the same business data (the
cache key of `prepare` contains the year-month for the same reason).

`--facts` receives a JSON summary of what was seeded (codes, ids, numbers,
totals); `serve.py` reads it and README.md documents it.
"""

import argparse
import datetime
import json
import sys
from decimal import Decimal

from dateutil.relativedelta import relativedelta

from proteus import Model, Wizard
from proteus import config as pconfig

COMPANY_NAME = "Backhaul Distribution"
CURRENCY = "USD"
TAX_NAME = "VAT 10%"
TAX_RATE = Decimal("0.10")
PAYMENT_TERM = "Net 30 days"
EMPLOYEE_PARTY = "Backhaul Admin"
WAREHOUSE_CODE = "WH"          # created by the stock module itself
SCRAP_CODE = "SCRAP"
STOCK_PER_PRODUCT = 1000

# (code, name, list price, cost price)
PRODUCTS = [
    ("SKU-001", "Trail Backpack 30L", Decimal("25.00"), Decimal("11.00")),
    ("SKU-002", "Rain Shell Jacket", Decimal("40.00"), Decimal("18.00")),
    ("SKU-003", "Merino Hiking Socks", Decimal("12.50"), Decimal("4.00")),
]

# (code, name, street, postal code, city)
CUSTOMERS = [
    ("CUST-1001", "Acme Retail", "100 Market Street", "94105", "San Francisco"),
    ("CUST-1002", "Borealis Outfitters", "7 Harbour Road", "99501",
        "Anchorage"),
]

# (reference, customer code, [(product code, quantity, unit price)])
SALES = [
    ("SO-1001", "CUST-1001", [("SKU-001", 3, Decimal("25.00")),
                              ("SKU-002", 1, Decimal("40.00"))]),
    ("SO-1002", "CUST-1001", [("SKU-003", 10, Decimal("12.50"))]),
    ("SO-1003", "CUST-1002", [("SKU-001", 5, Decimal("25.00"))]),
]


def log(msg):
    print(f"seed: {msg}", file=sys.stderr, flush=True)


def refresh_context(config):
    """proteus keeps the user preferences (company, employee) as its context;
    re-read them after changing the company or the employee of the user."""
    User = Model.get('res.user')
    config._context = User.get_preferences(True, {})


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument('--config', required=True)
    parser.add_argument('--database', required=True)
    parser.add_argument('--facts', required=True)
    args = parser.parse_args()

    config = pconfig.set_trytond(
        database=args.database, user='admin', config_file=args.config)
    # Seeding back-dated documents raises harmless UserWarnings; accept them.
    config.skip_warning = True

    # The only date the seed uses: the first day of the current month.
    seed_date = datetime.date.today().replace(day=1)
    facts = {'database': args.database, 'seed_date': seed_date.isoformat()}

    # --- currency & company -------------------------------------------------
    log("company")
    Currency = Model.get('currency.currency')
    CurrencyRate = Model.get('currency.currency.rate')
    Party = Model.get('party.party')
    currencies = Currency.find([('code', '=', CURRENCY)])
    if currencies:
        usd, = currencies
    else:
        usd = Currency(name="U.S. Dollar", code=CURRENCY, symbol="$",
            rounding=Decimal('0.01'), digits=2)
        usd.save()
        CurrencyRate(date=datetime.date(2000, 1, 1), rate=Decimal('1'),
            currency=usd).save()

    company_party = Party(name=COMPANY_NAME)
    company_party.save()
    company_config = Wizard('company.company.config')
    company_config.execute('company')
    company_config.form.party = company_party
    company_config.form.currency = usd
    company_config.form.timezone = 'UTC'
    company_config.execute('add')
    refresh_context(config)
    Company = Model.get('company.company')
    company, = Company.find()
    facts['company'] = {'id': company.id, 'name': COMPANY_NAME,
        'currency': CURRENCY}

    # --- employee for admin (fills quoted_by/confirmed_by/... when the
    # client sends `employee` in its context) --------------------------------
    log("employee")
    Employee = Model.get('company.employee')
    User = Model.get('res.user')
    employee_party = Party(name=EMPLOYEE_PARTY)
    employee_party.save()
    employee = Employee(party=employee_party, company=company)
    employee.save()
    admin = User(config.user)
    admin.employees.append(employee)
    admin.employee = employee
    admin.save()
    refresh_context(config)
    facts['admin'] = {'login': 'admin', 'password': 'admin', 'id': admin.id,
        'employee': employee.id}
    facts['context'] = {k: config.context.get(k)
        for k in ('company', 'employee', 'language')}

    # --- chart of accounts ----------------------------------------------------
    log("chart of accounts")
    ModelData = Model.get('ir.model.data')
    AccountTemplate = Model.get('account.account.template')
    Account = Model.get('account.account')
    template = AccountTemplate(ModelData.get_id(
            'account.account_template_root_en', config.context))
    create_chart = Wizard('account.create_chart')
    create_chart.execute('account')
    create_chart.form.account_template = template
    create_chart.form.company = company
    create_chart.execute('create_account')

    def account(type_=None, code=None):
        domain = [('company', '=', company.id), ('closed', '!=', True)]
        if type_:
            domain.append((f'type.{type_}', '=', True))
        if code:
            domain.append(('code', '=', code))
        found = Account.find(domain, order=[('code', 'ASC'), ('id', 'ASC')])
        assert found, (type_, code)
        return found[0]

    receivable = account('receivable')
    payable = account('payable')
    # Pinned by code: the first "expense"-typed account of the universal
    # chart by code is 2.2.1 "Accrued Expenses", not a cost-of-sales account.
    revenue = account('revenue', code='4.1.1')    # Goods
    expense = account('expense', code='5.1.1')    # Merchandise, Material...
    # "Non-Deductible VAT (GST)" in the universal chart, as in Tryton's tests.
    tax_account = account(code='6.3.6')
    create_chart.form.account_receivable = receivable
    create_chart.form.account_payable = payable
    create_chart.form.category_account_revenue = revenue
    create_chart.form.category_account_expense = expense
    create_chart.execute('create_properties')
    facts['accounts'] = {name: acc.code for name, acc in [
            ('receivable', receivable), ('payable', payable),
            ('revenue', revenue), ('expense', expense), ('tax', tax_account)]}

    # --- fiscal year(s): month-6 .. month+6, monthly periods ------------------
    # One fiscal year spanning 13 months is accepted by Tryton and avoids the
    # "next fiscal year" problem for a snapshot used later in the month.
    log("fiscal year")
    FiscalYear = Model.get('account.fiscalyear')
    SequenceStrict = Model.get('ir.sequence.strict')
    SequenceType = Model.get('ir.sequence.type')
    fy_start = seed_date - relativedelta(months=6)
    fy_end = seed_date + relativedelta(months=7) - relativedelta(days=1)
    fy_name = f"FY {fy_start:%Y-%m} to {fy_end:%Y-%m}"
    move_type, = SequenceType.find([('name', '=', "Account Move")], limit=1)
    invoice_type, = SequenceType.find([('name', '=', "Invoice")], limit=1)
    move_seq = SequenceStrict(name=f"{fy_name} moves", sequence_type=move_type,
        company=company)
    move_seq.save()
    invoice_seq = SequenceStrict(name=f"{fy_name} invoices",
        sequence_type=invoice_type, company=company, prefix="INV-")
    invoice_seq.save()
    credit_seq = SequenceStrict(name=f"{fy_name} credit notes",
        sequence_type=invoice_type, company=company, prefix="CN-")
    credit_seq.save()
    fiscalyear = FiscalYear(name=fy_name, start_date=fy_start,
        end_date=fy_end, company=company, move_sequence=move_seq)
    seq, = fiscalyear.invoice_sequences
    seq.out_invoice_sequence = invoice_seq
    seq.in_invoice_sequence = invoice_seq
    seq.out_credit_note_sequence = credit_seq
    seq.in_credit_note_sequence = credit_seq
    fiscalyear.save()
    fiscalyear.click('create_period')
    facts['fiscal_year'] = {'name': fy_name, 'start': fy_start.isoformat(),
        'end': fy_end.isoformat(), 'periods': len(fiscalyear.periods),
        'invoice_prefix': 'INV-', 'credit_note_prefix': 'CN-'}

    # --- tax -------------------------------------------------------------------
    log("tax")
    Tax = Model.get('account.tax')
    tax = Tax(name=TAX_NAME, description=TAX_NAME, type='percentage',
        rate=TAX_RATE, company=company, invoice_account=tax_account,
        credit_note_account=tax_account)
    tax.save()
    facts['tax'] = {'name': TAX_NAME, 'id': tax.id, 'rate': str(TAX_RATE),
        'type': 'percentage'}

    # --- payment term (also the default for customers) -------------------------
    log("payment term")
    PaymentTerm = Model.get('account.invoice.payment_term')
    AccountConfig = Model.get('account.configuration')
    # account_invoice ships standard terms ("Upon Receipt", "Net 30 days",
    # ...); reuse "Net 30 days" rather than adding a look-alike.
    terms = PaymentTerm.find([('name', '=', PAYMENT_TERM)])
    if terms:
        term = terms[0]
    else:
        term = PaymentTerm(name=PAYMENT_TERM)
        line = term.lines.new(type='remainder')
        line.relativedeltas.new(days=30)
        term.save()
    account_config = AccountConfig(1)
    account_config.default_customer_payment_term = term
    account_config.save()
    facts['payment_term'] = {'name': PAYMENT_TERM, 'id': term.id}

    # --- account category & products ------------------------------------------
    log("products")
    Category = Model.get('product.category')
    Uom = Model.get('product.uom')
    Template = Model.get('product.template')
    category = Category(name="Goods (VAT 10%)", accounting=True,
        account_revenue=revenue, account_expense=expense)
    category.customer_taxes.append(Tax(tax.id))
    category.save()
    unit, = Uom.find([('name', '=', "Unit")])
    facts['uom'] = {'name': unit.name, 'symbol': unit.symbol, 'id': unit.id}
    products = {}
    for code, name, list_price, cost_price in PRODUCTS:
        tmpl = Template(name=name, code=code, type='goods', salable=True,
            default_uom=unit, sale_uom=unit, list_price=list_price,
            account_category=category, cost_price_method='fixed')
        tmpl.save()
        product, = tmpl.products
        product.cost_price = cost_price
        product.save()
        assert product.code == code, (product.code, code)
        products[code] = product
    # product.product.list_price is a per-variant override (None here);
    # the effective price is list_price_used (falls back to the template).
    facts['products'] = {code: {'id': p.id, 'name': p.name,
            'list_price': str(p.list_price_used),
            'cost_price': str(p.cost_price)}
        for code, p in products.items()}

    # --- customers ---------------------------------------------------------------
    # party.code is filled from a sequence when empty, but an explicit code is
    # kept as is (the sequence only applies to records created without one).
    log("customers")
    Country = Model.get('country.country')
    us = Country.find([('code', '=', 'US')])
    if us:
        us, = us
    else:
        us = Country(name="United States", code='US', code3='USA')
        us.save()
    customers = {}
    for code, name, street, postal, city in CUSTOMERS:
        party = Party(code=code, name=name, customer_payment_term=term)
        address, = party.addresses
        address.street = street
        address.postal_code = postal
        address.city = city
        address.country = us
        party.save()
        assert party.code == code, (party.code, code)
        customers[code] = party
    facts['customers'] = {code: {'id': p.id, 'name': p.name,
            'address': p.addresses[0].id} for code, p in customers.items()}

    # --- locations: SCRAP (lost_found) as a waste location of WH -----------------
    log("locations")
    Location = Model.get('stock.location')
    warehouse, = Location.find([('code', '=', WAREHOUSE_CODE),
            ('type', '=', 'warehouse')])
    scrap = Location(name="Scrap", code=SCRAP_CODE, type='lost_found')
    scrap.save()
    warehouse.waste_locations.append(Location(scrap.id))
    warehouse.save()
    warehouse.reload()
    assert [l.code for l in warehouse.waste_locations] == [SCRAP_CODE]
    customer_loc, = Location.find([('type', '=', 'customer')])
    facts['locations'] = {
        'warehouse': {'code': warehouse.code, 'id': warehouse.id,
            'name': warehouse.name},
        'input': {'code': warehouse.input_location.code,
            'id': warehouse.input_location.id},
        'output': {'code': warehouse.output_location.code,
            'id': warehouse.output_location.id},
        'storage': {'code': warehouse.storage_location.code,
            'id': warehouse.storage_location.id},
        'lost_found': {'code': warehouse.lost_found_location.code,
            'id': warehouse.lost_found_location.id,
            'name': warehouse.lost_found_location.name},
        'scrap': {'code': SCRAP_CODE, 'id': scrap.id, 'name': scrap.name},
        'customer': {'code': customer_loc.code, 'id': customer_loc.id},
        }

    # --- initial stock: one inventory in storage -------------------------------
    log("inventory")
    Inventory = Model.get('stock.inventory')
    inventory = Inventory(location=warehouse.storage_location, date=seed_date,
        company=company)
    for code in sorted(products):
        inv_line = inventory.lines.new()
        inv_line.product = products[code]
        inv_line.quantity = float(STOCK_PER_PRODUCT)
    inventory.click('confirm')
    assert inventory.state == 'done', inventory.state

    # --- original sales: confirmed, shipped, invoiced ---------------------------
    Sale = Model.get('sale.sale')
    facts['sales'] = {}
    for reference, customer_code, lines in SALES:
        log(f"sale {reference}")
        party = customers[customer_code]
        sale = Sale(party=party, reference=reference, sale_date=seed_date,
            payment_term=term, invoice_method='order',
            shipment_method='order')
        for product_code, quantity, price in lines:
            # Assign the product (not `new(product=...)`) so that proteus
            # runs on_change_product, which fills unit, taxes and price.
            sale_line = sale.lines.new()
            sale_line.product = products[product_code]
            sale_line.quantity = float(quantity)
            sale_line.unit_price = price
            assert [t.id for t in sale_line.taxes] == [tax.id], (
                reference, product_code)
        sale.click('quote')
        sale.click('confirm')
        assert sale.state == 'processing', (reference, sale.state)
        shipment, = sale.shipments
        # Date the goods movements like the sale (moves take the shipment's
        # effective date), so the seed is identical for the whole month.
        shipment.effective_date = seed_date
        shipment.save()
        shipment.click('assign_try')
        assert shipment.state == 'assigned', (reference, shipment.state)
        shipment.click('pick')
        shipment.click('pack')
        shipment.click('do')
        assert shipment.state == 'done', (reference, shipment.state)
        invoice, = sale.invoices
        invoice.invoice_date = seed_date
        invoice.save()
        invoice.click('post')
        assert invoice.state == 'posted', (reference, invoice.state)
        sale.reload()
        assert sale.state in ('processing', 'done'), (reference, sale.state)
        assert sale.shipment_state == 'sent', (reference, sale.shipment_state)
        facts['sales'][reference] = {
            'id': sale.id, 'number': sale.number, 'state': sale.state,
            'customer': customer_code,
            'lines': [{'id': l.id, 'product': l.product.code,
                    'quantity': l.quantity, 'unit_price': str(l.unit_price)}
                for l in sale.lines],
            'untaxed_amount': str(sale.untaxed_amount),
            'tax_amount': str(sale.tax_amount),
            'total_amount': str(sale.total_amount),
            'shipment': {'id': shipment.id, 'number': shipment.number,
                'state': shipment.state},
            'invoice': {'id': invoice.id, 'number': invoice.number,
                'state': invoice.state,
                'total_amount': str(invoice.total_amount)},
            }

    # --- final stock per product in the warehouse --------------------------------
    Product = Model.get('product.product')
    with config.set_context(locations=[warehouse.id]):
        facts['stock_wh'] = {p.code: p.quantity
            for p in Product.find([('code', 'in', list(products))])}
    with config.set_context(locations=[scrap.id]):
        facts['stock_scrap'] = {p.code: p.quantity
            for p in Product.find([('code', 'in', list(products))])}

    with open(args.facts, 'w') as f:
        json.dump(facts, f, indent=2, sort_keys=True)
        f.write('\n')
    log("done")


if __name__ == '__main__':
    main()
