"""HTML error pages in Portuguese for people using a browser."""

from __future__ import annotations

from quart import render_template

MESSAGES = {
    404: ("Página não encontrada", "O endereço não existe ou a cobrança não foi encontrada."),
    405: ("Método não permitido", "Esta página não aceita esta operação."),
    500: ("Erro inesperado", "Algo deu errado do nosso lado. Tente novamente em instantes."),
}


async def error_page(status: int) -> tuple[str, int]:
    """Render the pt-BR page for an HTTP error status."""
    title, message = MESSAGES.get(status, ("Erro", "Não foi possível atender ao pedido."))
    page = await render_template("pages/error.html", status=status, title=title, message=message)
    return page, status
