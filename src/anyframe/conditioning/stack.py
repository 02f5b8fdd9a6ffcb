"""Several conditioning methods on one model: frame replacement + joint masks + style tokens, for instance.

Each member contributes through its own hooks, in order: its part of the inputs (:meth:`apply`,
:meth:`apply_training`), its layers (:meth:`pre_backbone`), its state hooks, its loss terms, its backbone
channels and context-token groups (added once, for all members, by :meth:`ConditioningMethod.adapt_backbone`).
The first member's dropout rates are the model's (dropout is drawn once, so "no image" means no image
condition of any member — what JIT-CFG's unconditional branch contrasts with).

A stack saves and loads like any method: its config lists the members' names and configs, its weights are
the members' under ``members.<i>.``.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import torch
from diffusers.configuration_utils import register_to_config

# diffusers' pipeline loader looks up a component's base class in the module that defines it.
from diffusers.models.modeling_utils import ModelMixin  # noqa: F401
from torch import Tensor

from anyframe.conditioning.base import (
    ConditioningMethod,
    ConditionState,
    Encoders,
    ModelInputs,
    TrainingBatch,
    TrainingInputs,
)
from anyframe.conditioning.registry import method_class, register_method
from anyframe.flow.guidance import Branch


@dataclass
class StackState(ConditionState):
    states: list[ConditionState] = field(default_factory=list)  # one per member, in order

    @property
    def has_image(self) -> bool:
        return any(s.has_image for s in self.states)

    def generated_mask(self) -> Tensor | None:
        return next((m for m in (s.generated_mask() for s in self.states) if m is not None), None)


@register_method
class MethodStack(ConditioningMethod):
    """Members applied in order (see the module doc).

    Args:
        methods: ``[{"name": method name, **its config}, ...]`` (at least two; build one with :meth:`of`).
    """

    name = "stack"
    summary = "several methods on one model"

    @register_to_config
    def __init__(self, methods: list[dict] | None = None):
        super().__init__()
        specs = list(methods or [])
        if len(specs) < 2:
            raise ValueError("a method stack needs at least two methods")
        members = []
        for spec in specs:
            spec = dict(spec)
            cls = method_class(spec.pop("name"))
            if cls is MethodStack:
                raise ValueError("a method stack cannot hold another stack")
            members.append(cls(**spec))
        self.members = torch.nn.ModuleList(members)
        groups = [g for m in members for g in m.context_groups]
        if len(set(groups)) != len(groups):
            raise ValueError(f"two methods add the same context-token group: {groups}")
        # A method that adds output channels (JDM's masks) lays the sampler state out as [video | its channels]
        # and splits it so; a second such method would need a layout this stack does not define.
        widening = [m.name for m in members if m.extra_out_channels]
        if len(widening) > 1:
            raise ValueError(f"at most one method in a stack may add output channels; {widening} each do")

    @classmethod
    def of(cls, members: list[ConditioningMethod]) -> MethodStack:
        """A stack of built methods (their weights kept)."""
        specs = [{"name": m.name, **{k: v for k, v in m.config.items() if not k.startswith("_")}} for m in members]
        stack = cls(methods=specs)
        for own, given in zip(stack.members, members):
            own.load_state_dict(given.state_dict())
        return stack

    # ------------------------------------------------------------------------------- declarations

    @property
    def methods(self) -> list[ConditioningMethod]:
        return list(self.members)

    @property
    def request_fields(self) -> frozenset[str]:
        return frozenset().union(*(m.request_fields for m in self.members))

    @property
    def context_groups(self) -> dict[str, int]:
        return {g: w for m in self.members for g, w in m.context_groups.items()}

    @property
    def batch_fields(self) -> frozenset[str]:
        return frozenset().union(*(m.batch_fields for m in self.members))

    @property
    def extra_outputs(self) -> frozenset[str]:
        return frozenset().union(*(m.extra_outputs for m in self.members))

    @property
    def extra_in_channels(self) -> int:
        return sum(m.extra_in_channels for m in self.members)

    @property
    def extra_out_channels(self) -> int:
        return sum(m.extra_out_channels for m in self.members)

    def check_request(self, request, limits) -> str | None:
        return next((r for r in (m.check_request(request, limits) for m in self.members) if r), None)

    def dropout_rates(self) -> tuple[float, float]:
        return self.members[0].dropout_rates()

    # ------------------------------------------------------------------------------- inference

    def encode(self, request, encoders: Encoders) -> StackState:
        return StackState.of(encoders, states=[m.encode(request, encoders) for m in self.members])

    def apply(self, inputs: ModelInputs, x: Tensor, sigma: Tensor, state: StackState, branch: Branch) -> ModelInputs:
        for member, own in zip(self.members, state.states):
            inputs = member.apply(inputs, x, sigma, own, branch)
        return inputs

    def pre_backbone(self, inputs: ModelInputs) -> ModelInputs:
        for member in self.members:
            inputs = member.pre_backbone(inputs)
        return inputs

    def after_step(self, x: Tensor, sigma_next: Tensor, state: StackState) -> Tensor:
        for member, own in zip(self.members, state.states):
            x = member.after_step(x, sigma_next, own)
        return x

    def finalize(self, x: Tensor, state: StackState) -> Tensor:
        for member, own in zip(self.members, state.states):
            x = member.finalize(x, own)
        return x

    def outputs(self, latents: Tensor, state: StackState, encoders: Encoders) -> dict:
        out = {}
        for member, own in zip(self.members, state.states):
            out.update(member.outputs(latents, own, encoders))
        return out

    # ------------------------------------------------------------------------------- training

    def apply_training(self, inputs: TrainingInputs, batch: TrainingBatch,
                       generator: torch.Generator | None) -> TrainingInputs:
        for member in self.members:
            inputs = member.apply_training(inputs, batch, generator)
        return inputs

    def loss_terms(self, outputs, inputs: TrainingInputs, terms: dict[str, Tensor]) -> dict[str, Tensor]:
        for member in self.members:
            terms = member.loss_terms(outputs, inputs, terms)
        return terms

    def diagnostics(self, outputs, inputs: TrainingInputs) -> dict[str, float]:
        out: dict[str, float] = {}
        for member in self.members:
            out.update(member.diagnostics(outputs, inputs))
        return out
