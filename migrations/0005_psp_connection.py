from tortoise import migrations
from tortoise.migrations import operations as ops
from tortoise.fields.base import OnDelete
from tortoise import fields

class Migration(migrations.Migration):
    dependencies = [('models', '0004_received_pix')]

    initial = False

    operations = [
        ops.CreateModel(
            name='PspConnection',
            fields=[
                ('id', fields.IntField(generated=True, primary_key=True, unique=True, db_index=True)),
                ('merchant', fields.OneToOneField('models.Merchant', source_field='merchant_id', db_constraint=True, to_field='id', related_name='psp_connection', on_delete=OnDelete.RESTRICT)),
                ('base_url', fields.CharField(max_length=500)),
                ('token_url', fields.CharField(max_length=500)),
                ('client_id', fields.CharField(max_length=255)),
                ('client_secret', fields.TextField(unique=False)),
                ('certificate_pem', fields.TextField(unique=False)),
                ('private_key_pem', fields.TextField(unique=False)),
                ('server_ca_pem', fields.TextField(null=True, unique=False)),
                ('certificate_subject', fields.TextField(unique=False)),
                ('certificate_issuer', fields.TextField(unique=False)),
                ('certificate_not_after', fields.DatetimeField(auto_now=False, auto_now_add=False)),
                ('chave', fields.CharField(max_length=77)),
                ('webhook_token_hash', fields.CharField(unique=True, max_length=64)),
                ('webhook_url', fields.TextField(unique=False)),
                ('revision', fields.IntField(default=1)),
                ('connected_at', fields.DatetimeField(auto_now=False, auto_now_add=False)),
                ('last_reconciliation_at', fields.DatetimeField(null=True, auto_now=False, auto_now_add=False)),
            ],
            options={'table': 'psp_connection', 'app': 'models', 'pk_attr': 'id', 'table_description': "A merchant's account at its PSP, reached through the Banco Central's API Pix."},
            bases=['Model'],
        ),
    ]
