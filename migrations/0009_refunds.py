from tortoise import migrations
from tortoise.migrations import operations as ops
from pixweb.models import MovementKind, PaymentStatus, RefundKind, RefundStatus
from tortoise.fields.base import OnDelete
from uuid import uuid4
from tortoise import fields
from tortoise.indexes import Index


class AlterColumn(ops.AlterField):
    """Alter a column on PostgreSQL only (as 0008's WidenColumn): SQLite ignores a VARCHAR's
    length and an enum's description, and Tortoise's SQLite AlterField rebuilds the table
    without its unique_together and indexes: there only the state changes."""

    async def database_forward(self, app_label, old_state, new_state, state_editor=None):
        if state_editor is None or state_editor.DIALECT == "sqlite":
            return
        await super().database_forward(app_label, old_state, new_state, state_editor)

    async def database_backward(self, app_label, old_state, new_state, state_editor=None):
        if state_editor is None or state_editor.DIALECT == "sqlite":
            return
        await super().database_backward(app_label, old_state, new_state, state_editor)


class Migration(migrations.Migration):
    dependencies = [('models', '0008_psp_charges')]

    initial = False

    operations = [
        ops.CreateModel(
            name='Refund',
            fields=[
                ('id', fields.UUIDField(primary_key=True, default=uuid4, unique=True, db_index=True)),
                ('merchant', fields.ForeignKeyField('models.Merchant', source_field='merchant_id', db_constraint=True, to_field='id', related_name='refunds', on_delete=OnDelete.RESTRICT)),
                ('received_pix', fields.ForeignKeyField('models.ReceivedPix', source_field='received_pix_id', null=True, db_constraint=True, to_field='id', related_name='refunds', on_delete=OnDelete.RESTRICT)),
                ('payment', fields.ForeignKeyField('models.Payment', source_field='payment_id', null=True, db_constraint=True, to_field='id', related_name='refunds', on_delete=OnDelete.RESTRICT)),
                ('end_to_end_id', fields.CharField(null=True, max_length=35)),
                ('devolucao_id', fields.CharField(max_length=35)),
                ('rtr_id', fields.CharField(null=True, max_length=32)),
                ('kind', fields.CharEnumField(description='PSP: psp\nEXTERNAL: external\nESTORNO: estorno', enum_type=RefundKind, max_length=8)),
                ('natureza', fields.CharField(max_length=18)),
                ('amount_cents', fields.BigIntField()),
                ('description', fields.CharField(null=True, max_length=140)),
                ('status', fields.CharEnumField(description='PROCESSING: processing\nREFUNDED: refunded\nFAILED: failed', enum_type=RefundStatus, max_length=10)),
                ('reason', fields.CharField(null=True, max_length=200)),
                ('requested_at', fields.DatetimeField(auto_now=False, auto_now_add=False)),
                ('settled_at', fields.DatetimeField(null=True, auto_now=False, auto_now_add=False)),
                ('movement', fields.ForeignKeyField('models.Movement', source_field='movement_id', null=True, db_constraint=True, to_field='id', related_name='refunds', on_delete=OnDelete.RESTRICT)),
                ('credit_movement', fields.ForeignKeyField('models.Movement', source_field='credit_movement_id', null=True, db_constraint=True, to_field='id', related_name='refunds_credited', on_delete=OnDelete.RESTRICT)),
                ('idempotency_key', fields.CharField(null=True, max_length=255)),
                ('request_hash', fields.CharField(null=True, max_length=64)),
            ],
            options={'table': 'refund', 'app': 'models', 'unique_together': (('merchant_id', 'idempotency_key'), ('received_pix_id', 'devolucao_id')), 'indexes': [Index(fields=['status', 'kind']), Index(fields=['received_pix_id']), Index(fields=['payment_id'])], 'pk_attr': 'id', 'table_description': 'A refund of a received Pix (or of a charge paid from a pixweb balance).'},
            bases=['Model'],
        ),
        # New kinds: devolucao, devolucao_estornada, estorno (the column is wide enough).
        AlterColumn(
            model_name='Movement',
            name='kind',
            field=fields.CharEnumField(description='DEPOSITO: deposito\nSAQUE: saque\nTRANSFERENCIA_ENVIADA: transferencia_enviada\nTRANSFERENCIA_RECEBIDA: transferencia_recebida\nPAGAMENTO: pagamento\nPIX_RECEBIDO: pix_recebido\nDEVOLUCAO: devolucao\nDEVOLUCAO_ESTORNADA: devolucao_estornada\nESTORNO: estorno', enum_type=MovementKind, max_length=22),
        ),
        # partially_refunded and refunded: 9 characters are not enough.
        AlterColumn(
            model_name='Payment',
            name='status',
            field=fields.CharEnumField(default=PaymentStatus.PENDING, description='PENDING: pending\nPAID: paid\nCANCELLED: cancelled\nEXPIRED: expired\nPARTIALLY_REFUNDED: partially_refunded\nREFUNDED: refunded', enum_type=PaymentStatus, max_length=18),
        ),
        ops.AddField(
            model_name='Payment',
            name='refunded_cents',
            field=fields.BigIntField(default=0, db_default=0),
        ),
    ]
