from tortoise import migrations
from tortoise.migrations import operations as ops
import functools
from json import dumps, loads
from pixweb.models import MovementKind
from tortoise.fields.base import OnDelete
from tortoise import fields
from tortoise.indexes import Index

class Migration(migrations.Migration):
    dependencies = [('models', '0001_initial')]

    initial = False

    operations = [
        ops.CreateModel(
            name='Account',
            fields=[
                ('id', fields.IntField(generated=True, primary_key=True, unique=True, db_index=True)),
                ('merchant', fields.OneToOneField('models.Merchant', source_field='merchant_id', db_constraint=True, to_field='id', related_name='account', on_delete=OnDelete.RESTRICT)),
                ('balance_cents', fields.BigIntField(default=0)),
                ('created_at', fields.DatetimeField(auto_now=False, auto_now_add=True)),
            ],
            options={'table': 'account', 'app': 'models', 'pk_attr': 'id', 'table_description': "A merchant's balance in centavos, changed only together with a Movement row."},
            bases=['Model'],
        ),
        ops.CreateModel(
            name='Movement',
            fields=[
                ('id', fields.BigIntField(generated=True, primary_key=True, unique=True, db_index=True)),
                ('account', fields.ForeignKeyField('models.Account', source_field='account_id', db_constraint=True, to_field='id', related_name='movements', on_delete=OnDelete.RESTRICT)),
                ('kind', fields.CharEnumField(description='DEPOSITO: deposito\nSAQUE: saque\nTRANSFERENCIA_ENVIADA: transferencia_enviada\nTRANSFERENCIA_RECEBIDA: transferencia_recebida\nPAGAMENTO: pagamento\nPIX_RECEBIDO: pix_recebido', enum_type=MovementKind, max_length=22)),
                ('amount_cents', fields.BigIntField()),
                ('balance_after_cents', fields.BigIntField()),
                ('reference', fields.CharField(null=True, max_length=64)),
                ('counterpart', fields.CharField(null=True, max_length=254)),
                ('description', fields.CharField(null=True, max_length=140)),
                ('created_at', fields.DatetimeField(auto_now=False, auto_now_add=False)),
                ('idempotency_key', fields.CharField(null=True, max_length=255)),
                ('request_hash', fields.CharField(null=True, max_length=64)),
            ],
            options={'table': 'movement', 'app': 'models', 'unique_together': (('account_id', 'idempotency_key'),), 'indexes': [Index(fields=['account_id', 'created_at'])], 'pk_attr': 'id', 'table_description': 'One append-only ledger line: signed amount and the balance it left.'},
            bases=['Model'],
        ),
        ops.CreateModel(
            name='Notification',
            fields=[
                ('id', fields.BigIntField(generated=True, primary_key=True, unique=True, db_index=True)),
                ('merchant', fields.ForeignKeyField('models.Merchant', source_field='merchant_id', db_constraint=True, to_field='id', related_name='notifications', on_delete=OnDelete.RESTRICT)),
                ('tipo', fields.CharField(max_length=22)),
                ('mensagem', fields.CharField(max_length=200)),
                ('dados', fields.JSONField(default=dict, encoder=functools.partial(dumps, separators=(',', ':')), decoder=loads)),
                ('created_at', fields.DatetimeField(auto_now=False, auto_now_add=False)),
                ('read_at', fields.DatetimeField(null=True, auto_now=False, auto_now_add=False)),
            ],
            options={'table': 'notification', 'app': 'models', 'indexes': [Index(fields=['merchant_id', 'created_at'])], 'pk_attr': 'id', 'table_description': 'What a merchant is told about a movement, kept for the history and unread count.'},
            bases=['Model'],
        ),
        # Merchants registered before accounts existed get one, with a zero balance.
        # Plain SQL that SQLite and PostgreSQL both speak.
        ops.RunSQL(
            'INSERT INTO "account" ("merchant_id", "balance_cents", "created_at") '
            'SELECT "id", 0, "created_at" FROM "merchant"',
            reverse_sql='DELETE FROM "account"',
        ),
    ]
