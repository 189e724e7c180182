from tortoise import migrations
from tortoise.migrations import operations as ops
import functools
from json import dumps, loads
from tortoise.fields.base import OnDelete
from tortoise import fields
from tortoise.indexes import Index

class Migration(migrations.Migration):
    dependencies = [('models', '0005_psp_connection')]

    initial = False

    operations = [
        ops.CreateModel(
            name='SandboxCob',
            fields=[
                ('id', fields.IntField(generated=True, primary_key=True, unique=True, db_index=True)),
                ('merchant', fields.ForeignKeyField('models.Merchant', source_field='merchant_id', db_constraint=True, to_field='id', related_name='sandbox_cobs', on_delete=OnDelete.CASCADE)),
                ('txid', fields.CharField(max_length=35)),
                ('revisao', fields.IntField(default=0)),
                ('status', fields.CharField(max_length=31)),
                ('amount_cents', fields.BigIntField()),
                ('chave', fields.CharField(max_length=77)),
                ('expiracao', fields.IntField()),
                ('criacao', fields.DatetimeField(auto_now=False, auto_now_add=False)),
                ('solicitacao_pagador', fields.CharField(null=True, max_length=140)),
                ('devedor', fields.JSONField(null=True, encoder=functools.partial(dumps, separators=(',', ':')), decoder=loads)),
                ('info_adicionais', fields.JSONField(null=True, encoder=functools.partial(dumps, separators=(',', ':')), decoder=loads)),
                ('location', fields.CharField(unique=True, max_length=77)),
                ('pix_copia_e_cola', fields.TextField(unique=False)),
            ],
            options={'table': 'sandbox_cob', 'app': 'models', 'unique_together': (('merchant_id', 'txid'),), 'pk_attr': 'id', 'table_description': 'An immediate charge (cob) at the sandbox PSP, unique per receiver and txid.'},
            bases=['Model'],
        ),
        ops.CreateModel(
            name='SandboxPix',
            fields=[
                ('id', fields.IntField(generated=True, primary_key=True, unique=True, db_index=True)),
                ('merchant', fields.ForeignKeyField('models.Merchant', source_field='merchant_id', db_constraint=True, to_field='id', related_name='sandbox_pix', on_delete=OnDelete.CASCADE)),
                ('cob', fields.ForeignKeyField('models.SandboxCob', source_field='cob_id', null=True, db_constraint=True, to_field='id', related_name='pix', on_delete=OnDelete.CASCADE)),
                ('end_to_end_id', fields.CharField(unique=True, max_length=32)),
                ('txid', fields.CharField(null=True, max_length=35)),
                ('chave', fields.CharField(max_length=77)),
                ('amount_cents', fields.BigIntField()),
                ('horario', fields.DatetimeField(auto_now=False, auto_now_add=False)),
                ('payer_name', fields.CharField(max_length=200)),
                ('payer_cpf', fields.CharField(max_length=11)),
                ('info_pagador', fields.CharField(null=True, max_length=140)),
            ],
            options={'table': 'sandbox_pix', 'app': 'models', 'indexes': [Index(fields=['merchant_id', 'horario'])], 'pk_attr': 'id', 'table_description': 'A Pix the sandbox PSP received for a merchant, with or without a txid.'},
            bases=['Model'],
        ),
        ops.CreateModel(
            name='SandboxDevolucao',
            fields=[
                ('id', fields.IntField(generated=True, primary_key=True, unique=True, db_index=True)),
                ('pix', fields.ForeignKeyField('models.SandboxPix', source_field='pix_id', db_constraint=True, to_field='id', related_name='devolucoes', on_delete=OnDelete.CASCADE)),
                ('devolucao_id', fields.CharField(max_length=35)),
                ('rtr_id', fields.CharField(unique=True, max_length=32)),
                ('amount_cents', fields.BigIntField()),
                ('natureza', fields.CharField(max_length=18)),
                ('descricao', fields.CharField(null=True, max_length=140)),
                ('status', fields.CharField(max_length=16)),
                ('final_status', fields.CharField(max_length=16)),
                ('motivo', fields.CharField(null=True, max_length=140)),
                ('requested_at', fields.DatetimeField(auto_now=False, auto_now_add=False)),
                ('settle_at', fields.DatetimeField(auto_now=False, auto_now_add=False)),
                ('settled_at', fields.DatetimeField(null=True, auto_now=False, auto_now_add=False)),
            ],
            options={'table': 'sandbox_devolucao', 'app': 'models', 'unique_together': (('pix_id', 'devolucao_id'),), 'pk_attr': 'id', 'table_description': 'A refund of a sandbox Pix: EM_PROCESSAMENTO until settle_at, then final_status.'},
            bases=['Model'],
        ),
        ops.CreateModel(
            name='SandboxWebhook',
            fields=[
                ('id', fields.IntField(generated=True, primary_key=True, unique=True, db_index=True)),
                ('merchant', fields.ForeignKeyField('models.Merchant', source_field='merchant_id', db_constraint=True, to_field='id', related_name='sandbox_webhooks', on_delete=OnDelete.CASCADE)),
                ('chave', fields.CharField(max_length=77)),
                ('url', fields.TextField(unique=False)),
                ('criacao', fields.DatetimeField(auto_now=False, auto_now_add=False)),
            ],
            options={'table': 'sandbox_webhook', 'app': 'models', 'unique_together': (('merchant_id', 'chave'),), 'pk_attr': 'id', 'table_description': 'The URL a merchant registered at the sandbox PSP for the Pix paid to one key.'},
            bases=['Model'],
        ),
    ]
