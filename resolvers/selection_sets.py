"""Empty selection sets (`{}`, `customers {}`) are refused before the depth limit runs.

graphql-core 3.3 parses them (the specification's grammar does not allow them), and
strawberry's depth limiter then fails on `max()` of nothing, which reached clients as
INTERNAL_SERVER_ERROR. A document with one is invalid: GRAPHQL_VALIDATION_FAILED, and the
depth rule is not run on it.
"""

from __future__ import annotations

from graphql import (
    ASTValidationRule,
    DocumentNode,
    GraphQLError,
    SelectionSetNode,
    ValidationContext,
    Visitor,
    visit,
)

__all__ = ["refusing_empty_selection_sets"]


class _FindEmpty(Visitor):
    def __init__(self) -> None:
        super().__init__()
        self.empty: list[SelectionSetNode] = []

    def enter_selection_set(self, node: SelectionSetNode, *_args: object) -> None:
        if not node.selections:
            self.empty.append(node)


def _empty_selection_sets(document: DocumentNode) -> list[SelectionSetNode]:
    finder = _FindEmpty()
    visit(document, finder)
    return finder.empty


def refusing_empty_selection_sets(rule: type[ASTValidationRule]) -> type[ASTValidationRule]:
    """`rule`, run only on documents without empty selection sets; those get an error."""

    class Guarded(rule):  # type: ignore[misc,valid-type]
        def __init__(self, context: ValidationContext) -> None:
            empty = _empty_selection_sets(context.document)
            if not empty:
                super().__init__(context)
                return
            ASTValidationRule.__init__(self, context)
            context.report_error(
                GraphQLError("Selection sets must select at least one field.", empty[0])
            )

    Guarded.__name__ = Guarded.__qualname__ = f"NonEmpty{rule.__name__}"
    return Guarded
