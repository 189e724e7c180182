"""The API Pix models read the specification's own examples (API Pix 2.9.0, components.examples)
and what real PSPs send, and never carry money as a float."""

from __future__ import annotations

import json
from decimal import Decimal
from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st
from pydantic import ValidationError

from pixweb.psp import schemas
from pixweb.psp.schemas import (
    CobCompleta,
    CobGerada,
    CobSolicitada,
    CobStatus,
    Devolucao,
    DevolucaoSolicitada,
    DevolucaoStatus,
    Pix,
    PixConsultados,
    Problema,
    TokenResponse,
    WebhookCompleto,
    WebhookPayload,
)

# Examples from the specification, as it gives them.
COB_BODY_2 = {
    "calendario": {"expiracao": 3600},
    "devedor": {"cnpj": "12345678000195", "nome": "Empresa de Serviços SA"},
    "valor": {"original": "37.00", "modalidadeAlteracao": 1},
    "chave": "7d9f0335-8dcc-4054-9bf9-0dbd61d36906",
    "solicitacaoPagador": "Serviço realizado.",
    "infoAdicionais": [
        {"nome": "Campo 1", "valor": "Informação Adicional1 do PSP-Recebedor"},
        {"nome": "Campo 2", "valor": "Informação Adicional2 do PSP-Recebedor"},
    ],
}
COB_RESPONSE_1 = {
    "calendario": {"criacao": "2020-09-09T20:15:00.358Z", "expiracao": 3600},
    "txid": "7978c0c97ea847e78e8849634473c1f1",
    "revisao": 0,
    "loc": {
        "id": 789,
        "location": "pix.example.com/qr/9d36b84fc70b478fb95c12729b90ca25",
        "tipoCob": "cob",
    },
    "location": "pix.example.com/qr/9d36b84fc70b478fb95c12729b90ca25",
    "status": "ATIVA",
    **{k: v for k, v in COB_BODY_2.items() if k != "calendario"},
}
COB_RESPONSE_2 = {
    "calendario": {"criacao": "2020-09-09T20:15:00.358Z", "expiracao": 3600},
    "txid": "655dfdb1a4514b8fbb58254b958913fb",
    "revisao": 1,
    "loc": {"id": 567, "location": "pix.example.com/qr/1dd7f893a58e417287028dc33e21a403"},
    "location": "pix.example.com/qr/1dd7f893a58e417287028dc33e21a403",
    "status": "CONCLUIDA",
    "devedor": {"cnpj": "12345678000195", "nome": "Empresa de Serviços SA"},
    "valor": {"original": "100.00", "modalidadeAlteracao": 0},
    "chave": "40a0932d-1918-4eee-845d-35a2da1690dc",
    "solicitacaoPagador": "Informar cartão fidelidade",
    "pix": [
        {
            "endToEndId": "E1234567820200909122120200808008",
            "txid": "655dfdb1a4514b8fbb58254b958913fb",
            "valor": "110.00",
            "horario": "2020-09-09T20:15:00.358Z",
            "infoPagador": "0123456789",
            "devolucoes": [
                {
                    "id": "123ABC",
                    "rtrId": "D1234567820200909122120200808006",
                    "valor": "10.00",
                    "horario": {"solicitacao": "2020-09-09T20:15:00.358Z"},
                    "status": "EM_PROCESSAMENTO",
                }
            ],
        }
    ],
}
PIX_RESPONSE_1 = {
    "endToEndId": "E12345678202009091221abcdef12345",
    "txid": "cd1fe328c875481285a6f233ae41b662",
    "valor": "100.00",
    "horario": "2020-09-10T13:03:33.902Z",
    "infoPagador": "Reforma da casa",
    "devolucoes": [
        {
            "id": "000AAA111",
            "rtrId": "D12345678202009091000abcde123456",
            "valor": "11.00",
            "horario": {"solicitacao": "2020-09-10T13:03:33.902Z"},
            "status": "EM_PROCESSAMENTO",
        }
    ],
}
PIX_RESPONSE_2 = {  # a 34-character endToEndId, in the specification's own example
    "endToEndId": "E12345678202009091221ghijk78901234",
    "txid": "5b933948f3224266b1050ac54319e775",
    "valor": "200.00",
    "horario": "2020-09-10T13:03:33.902Z",
    "infoPagador": "Revisão do carro",
}
PIX_RESPONSE_3 = {
    "endToEndId": "E88631478202009091221ghijk78901234",
    "txid": "82433415910c47e5adb6ac3527cca160",
    "valor": "200.00",
    "componentesValor": {
        "original": {"valor": "180.00"},
        "saque": {
            "valor": "20.00",
            "modalidadeAgente": "AGPSS",
            "prestadorDeServicoDeSaque": "12345678",
        },
    },
    "horario": "2020-09-10T13:03:33.902Z",
    "infoPagador": "Saque Pix",
}
PIX_WEBHOOK_1 = {  # `devolucoes` as an object where the schema says array
    "endToEndId": "E12345678202009091221kkkkkkkkkkk",
    "txid": "c3e0e7a4e7f1469a9f782d3d4999343c",
    "valor": "110.00",
    "horario": "2020-09-09T20:15:00.358Z",
    "infoPagador": "0123456789",
    "devolucoes": {
        "id": "123ABC",
        "rtrId": "D12345678202009091221abcdf098765",
        "valor": "10.00",
        "horario": {"solicitacao": "2020-09-09T20:15:00.358Z"},
        "status": "EM_PROCESSAMENTO",
    },
}
PIX_WEBHOOK_2 = {
    "endToEndId": "E87654321202009091221dfghi123456",
    "txid": "971122d8f37211eaadc10242ac120002",
    "valor": "110.00",
    "horario": "2020-09-09T20:15:00.358Z",
    "infoPagador": "0123456789",
}
DEVOLUCAO_RESPONSE_2 = {
    "id": "502",
    "rtrId": "D12345678202011111000fghij789012",
    "valor": "20.00",
    "horario": {"solicitacao": "2020-09-11T15:25:59.411Z"},
    "status": "NAO_REALIZADO",
    "motivo": "Negado por timeout",
}
PROBLEM_COB = {
    "type": "https://pix.bcb.gov.br/api/v2/error/CobOperacaoInvalida",
    "title": "Cobrança inválida.",
    "status": 400,
    "detail": "A requisição que busca alterar ou criar uma cobrança para pagamento imediato "
    "não respeita o _schema_ ou está semanticamente errada.",
    "violacoes": [
        {
            "razao": "O campo cob.valor.original não respeita o _schema_.",
            "propriedade": "cob.valor.original",
        }
    ],
}


def test_cob_solicitada_round_trips_the_specification_example() -> None:
    cob = CobSolicitada.model_validate(COB_BODY_2)
    assert cob.valor.original == Decimal("37.00")
    assert cob.solicitacao_pagador == "Serviço realizado."
    assert json.loads(schemas.to_json(cob)) == COB_BODY_2


def test_cob_solicitada_built_in_python_is_sent_with_the_specification_names() -> None:
    cob = CobSolicitada(
        calendario=schemas.CalendarioSolicitado(expiracao=600),
        valor=schemas.CobValor(original=schemas.valor_from_centavos(10000)),
        chave="merchant@example.com",
        solicitacao_pagador="Pedido 1042",
    )
    assert json.loads(schemas.to_json(cob)) == {
        "calendario": {"expiracao": 600},
        "valor": {"original": "100.00"},
        "chave": "merchant@example.com",
        "solicitacaoPagador": "Pedido 1042",
    }


@pytest.mark.parametrize(
    ("change", "field"),
    [
        ({"chave": "x" * 78}, "chave"),
        ({"solicitacaoPagador": "x" * 141}, "solicitacaoPagador"),
        ({"devedor": {"cpf": "12345678909", "cnpj": "12345678000195"}}, "devedor"),
        ({"calendario": {"expiracao": 0}}, "calendario"),
    ],
)
def test_cob_solicitada_keeps_the_specification_limits(change: dict[str, Any], field: str) -> None:
    with pytest.raises(ValidationError) as caught:
        CobSolicitada.model_validate({**COB_BODY_2, **change})
    assert caught.value.errors()[0]["loc"][0] == field


def test_cob_gerada_and_completa_read_the_specification_examples() -> None:
    gerada = CobGerada.model_validate(COB_RESPONSE_1)
    assert gerada.status is CobStatus.ATIVA
    assert gerada.loc is not None and gerada.loc.id == 789
    assert gerada.calendario.criacao.utcoffset() is not None

    completa = CobCompleta.model_validate(COB_RESPONSE_2)  # its `loc` has no `tipoCob`
    assert completa.status is CobStatus.CONCLUIDA
    assert completa.pix[0].valor == Decimal("110.00")
    assert completa.pix[0].devolucoes[0].status is DevolucaoStatus.EM_PROCESSAMENTO


def test_cob_payload_patch_removes_and_nothing_else() -> None:
    assert json.loads(schemas.to_json(schemas.CobPayloadPatch())) == {
        "status": "REMOVIDA_PELO_USUARIO_RECEBEDOR"
    }
    with pytest.raises(ValidationError):
        schemas.CobPayloadPatch.model_validate({"status": "CONCLUIDA"})


def test_devolucoes_as_an_object_or_an_array() -> None:
    as_object = Pix.model_validate(PIX_WEBHOOK_1)
    as_array = Pix.model_validate({**PIX_WEBHOOK_1, "devolucoes": [PIX_WEBHOOK_1["devolucoes"]]})
    assert as_object == as_array
    assert as_object.devolucoes[0].rtr_id == "D12345678202009091221abcdf098765"
    assert Pix.model_validate(PIX_WEBHOOK_2).devolucoes == []
    assert Pix.model_validate({**PIX_WEBHOOK_2, "devolucoes": None}).devolucoes == []


def test_pix_with_componentes_valor_and_34_character_e2eids() -> None:
    pix = Pix.model_validate(PIX_RESPONSE_3)
    assert pix.componentes_valor is not None
    assert pix.componentes_valor.original is not None
    assert pix.componentes_valor.original.valor == Decimal("180.00")
    assert pix.componentes_valor.saque is not None
    assert pix.componentes_valor.saque.prestador_de_servico_de_saque == "12345678"
    assert Pix.model_validate(PIX_RESPONSE_2).end_to_end_id.endswith("78901234")


def test_pix_tolerates_what_psps_add_and_how_they_say_no_txid() -> None:
    pix = Pix.model_validate(
        {
            **PIX_WEBHOOK_2,
            "txid": "",
            "gnExtras": {"tarifa": "0.01"},
            "pagador": {"cpf": "12345678909", "nome": "Fulano de Tal"},
            "infoPagador": "x" * 300,  # free text read from a PSP is not cut off
        }
    )
    assert pix.txid is None
    assert pix.pagador is not None and pix.pagador.nome == "Fulano de Tal"
    assert Pix.model_validate({k: v for k, v in PIX_WEBHOOK_2.items() if k != "txid"}).txid is None


@pytest.mark.parametrize(
    "change",
    [
        {"endToEndId": "E123"},  # too short
        {"endToEndId": "E12345678202009091221kkkkkkkkk-k"},  # not alphanumeric
        {"txid": "../cob/x"},
        {"horario": "2020-09-09T20:15:00"},  # RFC 3339 carries an offset
        {"valor": None},
    ],
)
def test_pix_refuses_bad_identifiers_times_and_amounts(change: dict[str, Any]) -> None:
    with pytest.raises(ValidationError):
        Pix.model_validate({**PIX_WEBHOOK_2, **change})


def test_webhook_payload_and_the_get_pix_list() -> None:
    batch = WebhookPayload.model_validate_json(json.dumps({"pix": [PIX_WEBHOOK_1, PIX_WEBHOOK_2]}))
    assert [p.valor for p in batch.pix] == [Decimal("110.00"), Decimal("110.00")]

    page = PixConsultados.model_validate(
        {
            "parametros": {
                "inicio": "2020-04-01T00:00:00Z",
                "fim": "2020-04-01T23:59:59Z",
                "paginacao": {
                    "paginaAtual": 0,
                    "itensPorPagina": 100,
                    "quantidadeDePaginas": 1,
                    "quantidadeTotalDeItens": 2,
                },
            },
            "pix": [PIX_RESPONSE_1, PIX_RESPONSE_2, PIX_RESPONSE_3],
        }
    )
    assert page.parametros.paginacao.quantidade_de_paginas == 1
    assert len(page.pix) == 3
    empty = PixConsultados.model_validate(
        {**page.model_dump(by_alias=True, mode="json"), "pix": []}
    )
    assert empty.pix == []


def test_devolucao_models() -> None:
    refused = Devolucao.model_validate(DEVOLUCAO_RESPONSE_2)
    assert refused.status is DevolucaoStatus.NAO_REALIZADO
    assert refused.motivo == "Negado por timeout"

    asked = DevolucaoSolicitada.model_validate({"valor": "7.89"})
    assert json.loads(schemas.to_json(asked)) == {"valor": "7.89", "natureza": "ORIGINAL"}
    for bad in ({"valor": "0.00"}, {"valor": "1.00", "natureza": "MED_FRAUDE"}):
        with pytest.raises(ValidationError):
            DevolucaoSolicitada.model_validate(bad)


def test_webhook_token_and_problem() -> None:
    webhook = WebhookCompleto.model_validate(
        {
            "webhookUrl": "https://pix.example.com/api/webhook/",
            "chave": "40a0932d-1918-4eee-845d-35a2da1690dc",
            "criacao": "2020-11-11T10:15:00.358Z",
        }
    )
    assert webhook.webhook_url == "https://pix.example.com/api/webhook/"
    assert json.loads(schemas.to_json(schemas.WebhookSolicitado(webhook_url="https://x/y"))) == {
        "webhookUrl": "https://x/y"
    }

    token = TokenResponse.model_validate(
        {"access_token": "abc", "token_type": "Bearer", "expires_in": "3600", "scope": "cob.read"}
    )
    assert token.expires_in == 3600

    problem = Problema.model_validate({**PROBLEM_COB, "correlationId": "c-1"})
    assert problem.violacoes[0].propriedade == "cob.valor.original"
    assert problem.correlation_id == "c-1"
    odd = Problema.model_validate({"violacoes": [{"propriedade": "valor", "valor": 0}]})
    assert odd.violacoes[0].valor == "0"


@pytest.mark.parametrize("text", ["0.00", "0.01", "100.00", "9999999999.99"])
def test_money_is_read_from_strict_strings_as_decimal(text: str) -> None:
    pix = Pix.model_validate({**PIX_WEBHOOK_2, "valor": text})
    assert pix.valor == Decimal(text)
    assert type(pix.valor) is Decimal
    assert json.loads(pix.model_dump_json(by_alias=True))["valor"] == text


@pytest.mark.parametrize(
    "raw",
    ["110.00", '"110.0"', '"110"', '"1e2"', '"110,00"', '" 110.00"', '"-1.00"', '"12345678901.00"'],
)
def test_money_is_never_read_from_a_json_number_or_a_loose_string(raw: str) -> None:
    body = json.dumps({**PIX_WEBHOOK_2, "valor": "PLACEHOLDER"}).replace('"PLACEHOLDER"', raw)
    with pytest.raises(ValidationError, match="decimal string"):
        Pix.model_validate_json(body)


@pytest.mark.parametrize("value", [110.0, 110, True, Decimal("1.001"), Decimal("NaN"), Decimal(-1)])
def test_money_is_never_a_float_in_python_either(value: object) -> None:
    with pytest.raises(ValidationError):
        schemas.CobValor(original=value)  # type: ignore[arg-type]


@given(st.integers(min_value=0, max_value=10**12 - 1))
def test_centavos_round_trip(cents: int) -> None:
    valor = schemas.valor_from_centavos(cents)
    assert schemas.centavos(valor) == cents
    assert schemas.format_valor(valor) == f"{cents // 100}.{cents % 100:02d}"


def test_centavos_refuses_what_is_not_centavos() -> None:
    for bad in (-1, 1.5, True):
        with pytest.raises(ValueError):
            schemas.valor_from_centavos(bad)  # type: ignore[arg-type]
    with pytest.raises(ValueError):
        schemas.centavos(Decimal("1.001"))
