from tortoise import migrations
from tortoise.migrations import operations as ops
from pixweb.models import PixOutcome, PixSource
from tortoise.fields.base import OnDelete
from uuid import uuid4
from tortoise import fields
from tortoise.indexes import Index

# Charges the bank confirmed before received Pix were recorded: each credit gets its record
# (matched, source confirmation), keyed "txid:<txid>" when the bank named no end_to_end_id.
# A charge paid from a balance has a pagamento leg beside its credit, and no record. The
# record takes its charge's id: unique, as a charge is credited once (and SQLite has no UUID
# function). Plain SQL that SQLite and PostgreSQL both speak, with no ";" (Tortoise splits
# SQLite scripts on it).
BACKFILL = """
INSERT INTO "received_pix" ("id", "merchant_id", "end_to_end_id", "amount_cents", "txid",
    "paid_at", "source", "outcome", "payment_id", "movement_id", "created_at")
SELECT "p"."id", "p"."merchant_id", COALESCE("p"."end_to_end_id", 'txid:' || "p"."txid"),
    "m"."amount_cents", "p"."txid", COALESCE("p"."paid_at", "m"."created_at"),
    'confirmation', 'matched', "p"."id", "m"."id", "m"."created_at"
FROM "movement" "m" JOIN "payment" "p" ON "m"."reference" = 'payment:' || "p"."id"
WHERE "m"."kind" = 'pix_recebido' AND NOT EXISTS (
    SELECT 1 FROM "movement" "d" WHERE "d"."reference" = "m"."reference" AND "d"."kind" = 'pagamento'
)
"""


class Migration(migrations.Migration):
    dependencies = [('models', '0003_session_version')]

    initial = False

    operations = [
        ops.CreateModel(
            name='ReceivedPix',
            fields=[
                ('id', fields.UUIDField(primary_key=True, default=uuid4, unique=True, db_index=True)),
                ('merchant', fields.ForeignKeyField('models.Merchant', source_field='merchant_id', db_constraint=True, to_field='id', related_name='received_pix', on_delete=OnDelete.RESTRICT)),
                ('end_to_end_id', fields.CharField(unique=True, max_length=35)),
                ('amount_cents', fields.BigIntField()),
                ('txid', fields.CharField(null=True, max_length=35)),
                ('paid_at', fields.DatetimeField(auto_now=False, auto_now_add=False)),
                ('payer_name', fields.CharField(null=True, max_length=200)),
                ('payer_document', fields.CharField(null=True, max_length=18)),
                ('source', fields.CharEnumField(description='WEBHOOK: webhook\nRECONCILIATION: reconciliation\nCONFIRMATION: confirmation\nSANDBOX: sandbox', enum_type=PixSource, max_length=14)),
                ('outcome', fields.CharEnumField(description='MATCHED: matched\nLATE: late\nDUPLICATE: duplicate\nAMOUNT_MISMATCH: amount_mismatch\nUNKNOWN_TXID: unknown_txid\nNO_TXID: no_txid', enum_type=PixOutcome, max_length=15)),
                ('original_outcome', fields.CharEnumField(null=True, description='MATCHED: matched\nLATE: late\nDUPLICATE: duplicate\nAMOUNT_MISMATCH: amount_mismatch\nUNKNOWN_TXID: unknown_txid\nNO_TXID: no_txid', enum_type=PixOutcome, max_length=15)),
                ('payment', fields.ForeignKeyField('models.Payment', source_field='payment_id', null=True, db_constraint=True, to_field='id', related_name='received_pix', on_delete=OnDelete.RESTRICT)),
                ('movement', fields.OneToOneField('models.Movement', source_field='movement_id', db_constraint=True, to_field='id', related_name='received_pix', on_delete=OnDelete.RESTRICT)),
                ('created_at', fields.DatetimeField(auto_now=False, auto_now_add=False)),
                ('attach_key', fields.CharField(null=True, max_length=255)),
            ],
            options={'table': 'received_pix', 'app': 'models', 'unique_together': (('merchant_id', 'attach_key'),), 'indexes': [Index(fields=['merchant_id', 'created_at'])], 'pk_attr': 'id', 'table_description': "A Pix a merchant's bank account received, recorded once by its end_to_end_id."},
            bases=['Model'],
        ),
        ops.AddIndex(
            model_name='Movement',
            index=Index(fields=['reference']),
        ),
        ops.RunSQL(BACKFILL, reverse_sql='DELETE FROM "received_pix"'),
    ]
