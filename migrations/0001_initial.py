from tortoise import migrations
from tortoise.migrations import operations as ops
from pixweb.models import PaymentStatus
from tortoise.fields.base import OnDelete
from uuid import uuid4
from tortoise import fields
from tortoise.indexes import Index

class Migration(migrations.Migration):
    initial = True

    operations = [
        ops.CreateModel(
            name='Merchant',
            fields=[
                ('id', fields.IntField(generated=True, primary_key=True, unique=True, db_index=True)),
                ('name', fields.CharField(max_length=100)),
                ('email', fields.CharField(unique=True, max_length=254)),
                ('password_hash', fields.CharField(max_length=255)),
                ('city', fields.CharField(max_length=60)),
                ('pix_key', fields.CharField(max_length=77)),
                ('pix_key_type', fields.CharField(max_length=5)),
                ('created_at', fields.DatetimeField(auto_now=False, auto_now_add=True)),
            ],
            options={'table': 'merchant', 'app': 'models', 'pk_attr': 'id', 'table_description': 'A business that charges with PIX, paid to its Pix key.'},
            bases=['Model'],
        ),
        ops.CreateModel(
            name='Payment',
            fields=[
                ('id', fields.UUIDField(primary_key=True, default=uuid4, unique=True, db_index=True)),
                ('merchant', fields.ForeignKeyField('models.Merchant', source_field='merchant_id', db_constraint=True, to_field='id', related_name='payments', on_delete=OnDelete.RESTRICT)),
                ('amount_cents', fields.BigIntField()),
                ('description', fields.CharField(null=True, max_length=140)),
                ('txid', fields.CharField(unique=True, max_length=25)),
                ('brcode', fields.TextField(unique=False)),
                ('status', fields.CharEnumField(default=PaymentStatus.PENDING, description='PENDING: pending\nPAID: paid\nCANCELLED: cancelled\nEXPIRED: expired', enum_type=PaymentStatus, max_length=9)),
                ('created_at', fields.DatetimeField(auto_now=False, auto_now_add=False)),
                ('expires_at', fields.DatetimeField(auto_now=False, auto_now_add=False)),
                ('paid_at', fields.DatetimeField(null=True, auto_now=False, auto_now_add=False)),
                ('end_to_end_id', fields.CharField(null=True, unique=True, max_length=32)),
                ('idempotency_key', fields.CharField(null=True, max_length=255)),
                ('request_hash', fields.CharField(null=True, max_length=64)),
            ],
            options={'table': 'payment', 'app': 'models', 'unique_together': (('merchant_id', 'idempotency_key'),), 'indexes': [Index(fields=['merchant_id', 'created_at'])], 'pk_attr': 'id', 'table_description': 'A PIX charge: one static BR Code with amount and a unique txid.'},
            bases=['Model'],
        ),
    ]
