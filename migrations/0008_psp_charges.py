from tortoise import migrations
from tortoise.migrations import operations as ops
from tortoise import fields
from tortoise.indexes import Index


class WidenColumn(ops.AlterField):
    """Widen a VARCHAR: PostgreSQL alters the column's type in place, keeping its unique
    constraint and indexes. SQLite ignores a VARCHAR's length, and Tortoise's SQLite
    AlterField rebuilds the table without its unique_together and indexes: there only the
    state changes."""

    async def database_forward(self, app_label, old_state, new_state, state_editor=None):
        if state_editor is None or state_editor.DIALECT == "sqlite":
            return
        await super().database_forward(app_label, old_state, new_state, state_editor)

    async def database_backward(self, app_label, old_state, new_state, state_editor=None):
        if state_editor is None or state_editor.DIALECT == "sqlite":
            return
        await super().database_backward(app_label, old_state, new_state, state_editor)


class Migration(migrations.Migration):
    dependencies = [('models', '0007_reconcile')]

    initial = False

    operations = [
        ops.AlterModelOptions(
            name='Payment',
            options={'table': 'payment', 'app': 'models', 'unique_together': (('merchant_id', 'idempotency_key'),), 'indexes': [Index(fields=['merchant_id', 'created_at'])], 'pk_attr': 'id', 'table_description': "A PIX charge: its BR Code (static, or the PSP's dynamic one), amount and unique txid."},
        ),
        # A charge created at the merchant's PSP has an API Pix txid: 26 to 35 characters.
        WidenColumn(
            model_name='Payment',
            name='txid',
            field=fields.CharField(unique=True, max_length=35),
        ),
        # pixweb's own sandbox PSP (development): no certificate, credentials derived.
        ops.AddField(
            model_name='PspConnection',
            name='sandbox',
            field=fields.BooleanField(default=False, db_default=False),
        ),
    ]
