"""AesMamba: encoders → modal-adaptive integration → MBA heads, for the four tasks V, M, F and P.

* Encoders: VMamba v0 for the image, optionally BERT for comments (M) or a user prompt (P).
* Modal-adaptive integration, decided at run time: text given and a text encoder configured →
  cross-modal fusion (the image feature queries the text tokens); otherwise the pooled image feature.
* MBA heads: per task/attribute an adapter (D → D/4 → D, residual), a score branch and a scale-class branch.

transformers' output contract: ``return_dict``, ``output_hidden_states`` and ``output_attentions`` come from the
arguments or else from the config at call time; ``return_dict=False`` gives ``output.to_tuple()`` (``None``
fields left out). Attention: BERT runs the implementation the config names (eager or sdpa; sdpa returns no
weights, as in transformers); the fusion always computes its output with SDPA and, when attentions are asked
for, also returns its weights as ``cross_attentions``.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Optional, Union

import torch
import torch.nn.functional as F
from torch import nn
from transformers import BertModel, PreTrainedModel
from transformers import initialization as init
from transformers.utils import ModelOutput

from .configuration_aesmamba import AesMambaConfig
from .losses import balanced_softmax_loss, bce_as_released, emd_loss, scalar_mse, scale_classes
from .modeling_vmamba import VMambaModel
from .tasks import Task


@dataclass
class AesMambaModelOutput(ModelOutput):
    """
    Args:
        integrated_features: (batch, D) feature after modal-adaptive integration.
        image_features: (batch, D) pooled VMamba feature.
        vision_last_hidden_state: (batch, h, w, D) final VMamba feature map.
        text_last_hidden_state: (batch, L_text, D_text) text tokens, when text was used.
        hidden_states: when ``output_hidden_states``, the VMamba maps, channels-last (batch, h, w, C): the patch
            embedding, then each stage's output after its patch merging (see ``VMambaModelOutput``).
        text_hidden_states: when ``output_hidden_states`` and text was read, BERT's (batch, L_text, D_text)
            embedding output + one per layer.
        attentions: when ``output_attentions`` and text was read, BERT's self-attentions, one
            (batch, heads, L_text, L_text) per layer (empty under sdpa, as BertModel gives them).
        cross_attentions: when ``output_attentions`` and text was read, the fusion's weights
            (batch, fusion_heads, 1, L_text): the image feature is the single query over the text tokens.
    """

    integrated_features: Optional[torch.Tensor] = None
    image_features: Optional[torch.Tensor] = None
    vision_last_hidden_state: Optional[torch.Tensor] = None
    text_last_hidden_state: Optional[torch.Tensor] = None
    hidden_states: Optional[tuple[torch.Tensor, ...]] = None
    text_hidden_states: Optional[tuple[torch.Tensor, ...]] = None
    attentions: Optional[tuple[torch.Tensor, ...]] = None
    cross_attentions: Optional[tuple[torch.Tensor, ...]] = None


@dataclass
class AesMambaAssessmentOutput(ModelOutput):
    """
    Args:
        loss: total training loss when labels are given.
        scores: (batch, num_heads) score per head; the expected score Σ_k v_k p_k for a distribution head.
        distribution: (batch, K) predicted distribution of the distribution head, if any.
        class_logits: (batch, num_heads, C) scale-class logits (unadjusted), if any head has them.
        integrated_features: (batch, D) feature the heads read.
        hidden_states, text_hidden_states, attentions, cross_attentions: as in ``AesMambaModelOutput``.
    """

    loss: Optional[torch.Tensor] = None
    scores: Optional[torch.Tensor] = None
    distribution: Optional[torch.Tensor] = None
    class_logits: Optional[torch.Tensor] = None
    integrated_features: Optional[torch.Tensor] = None
    hidden_states: Optional[tuple[torch.Tensor, ...]] = None
    text_hidden_states: Optional[tuple[torch.Tensor, ...]] = None
    attentions: Optional[tuple[torch.Tensor, ...]] = None
    cross_attentions: Optional[tuple[torch.Tensor, ...]] = None


class CrossModalFusion(nn.Module):
    """One pre-norm cross-attention block (image feature as the single query) + a pre-norm FFN."""

    def __init__(self, config: AesMambaConfig):
        super().__init__()
        dim = config.vision_config.hidden_size
        text_dim = config.text_config.hidden_size
        eps = config.fusion_layer_norm_eps
        self.num_heads = config.fusion_num_heads
        self.head_dim = config.fusion_head_dim
        inner = self.num_heads * self.head_dim
        self.config = config  # shared with the model: mask_text_padding is read per call
        self.norm_image = nn.LayerNorm(dim, eps=eps)
        self.norm_text = nn.LayerNorm(text_dim, eps=eps)
        self.to_q = nn.Linear(dim, inner, bias=False)
        self.to_kv = nn.Linear(text_dim, 2 * inner, bias=False)  # rows [K; V]
        self.to_out = nn.Linear(inner, dim)
        self.norm_ffn = nn.LayerNorm(dim, eps=eps)
        self.ffn_in = nn.Linear(dim, config.fusion_ffn_dim)
        self.ffn_out = nn.Linear(config.fusion_ffn_dim, dim)

    def forward(
        self,
        image_features: torch.Tensor,
        text_states: torch.Tensor,
        text_mask: Optional[torch.Tensor] = None,
        output_attentions: bool = False,
    ) -> tuple[torch.Tensor, Optional[torch.Tensor]]:
        """image_features (B, D), text_states (B, L, D_t), text_mask (B, L) with 1 = real token →
        features (B, D), and the attention weights (B, heads, 1, L) when ``output_attentions``."""
        batch, length, _ = text_states.shape
        q = self.to_q(self.norm_image(image_features)).view(batch, self.num_heads, 1, self.head_dim)
        k, v = self.to_kv(self.norm_text(text_states)).chunk(2, dim=-1)
        k = k.view(batch, length, self.num_heads, self.head_dim).transpose(1, 2)
        v = v.view(batch, length, self.num_heads, self.head_dim).transpose(1, 2)
        attn_mask = None
        if self.config.mask_text_padding and text_mask is not None:
            attn_mask = text_mask.bool()[:, None, None, :]  # (B, 1, 1, L), True = attend
        attended = F.scaled_dot_product_attention(q, k, v, attn_mask=attn_mask)  # scale = head_dim^-0.5
        weights = None
        if output_attentions:  # SDPA keeps its weights to itself: the same softmax, for inspection only
            logits = (q @ k.transpose(-1, -2)) * self.head_dim**-0.5
            if attn_mask is not None:
                logits = logits.masked_fill(~attn_mask, float("-inf"))
            weights = logits.softmax(dim=-1)
        features = image_features + self.to_out(attended.reshape(batch, self.num_heads * self.head_dim))
        return features + self.ffn_out(F.gelu(self.ffn_in(self.norm_ffn(features)))), weights


class MBAAdapter(nn.Module):
    """Residual bottleneck adapter of one task/attribute: f + up(GELU(down(f)))."""

    def __init__(self, dim: int, reduction: int):
        super().__init__()
        self.down = nn.Linear(dim, dim // reduction)
        self.up = nn.Linear(dim // reduction, dim)

    def forward(self, features: torch.Tensor) -> torch.Tensor:
        return features + self.up(F.gelu(self.down(features)))


class HeadMLP(nn.Module):
    """Linear → ReLU → Linear."""

    def __init__(self, dim: int, hidden: int, out: int):
        super().__init__()
        self.fc1 = nn.Linear(dim, hidden)
        self.fc2 = nn.Linear(hidden, out)

    def forward(self, features: torch.Tensor) -> torch.Tensor:
        return self.fc2(F.relu(self.fc1(features)))


class MBAHead(nn.Module):
    """Adapter + score branch (+ scale-class branch) for one head description of ``config.heads``."""

    def __init__(self, dim: int, head: dict, config: AesMambaConfig):
        super().__init__()
        self.is_distribution = head["kind"] == "distribution"
        self.adapter = MBAAdapter(dim, config.adapter_reduction)
        self.score = HeadMLP(dim, config.head_hidden_size, head["num_bins"] if self.is_distribution else 1)
        n_cls = head.get("num_scale_classes", 0)
        self.scale_class = HeadMLP(dim, config.head_hidden_size, n_cls) if n_cls else None

    def forward(self, features: torch.Tensor) -> tuple[torch.Tensor, Optional[torch.Tensor]]:
        """(B, D) → score output ((B, K) probabilities or (B,) score), class logits (B, C) or None."""
        adapted = self.adapter(features)
        out = self.score(adapted)
        out = out.softmax(dim=-1) if self.is_distribution else out.squeeze(-1)
        return out, (self.scale_class(adapted) if self.scale_class is not None else None)


class TasteDirections(nn.Linear):
    """Per-user taste: an affine function of the feature the heads read, added to each scalar head's score.

    Zero in every base model, so a base scores exactly as the paper's architecture; fine-tuning keeps it frozen
    (``training.finetune.trainable_parts``) and a per-user PEFT adapter (``piaa.taste``) sets it. The model feeds
    it the feature with a constant 1 appended, so one LoRA factor (PEFT applies it to the same input) holds both
    the user's direction and offset and merges exactly."""

    def __init__(self, dim: int, num_scalar_heads: int):
        super().__init__(dim + 1, num_scalar_heads, bias=False)

    def reset_parameters(self) -> None:  # zeros, drawing no random numbers: other weights' seeds are unchanged
        nn.init.zeros_(self.weight)


class AesMambaPreTrainedModel(PreTrainedModel):
    config: AesMambaConfig
    config_class = AesMambaConfig
    base_model_prefix = "aesmamba"
    main_input_name = "pixel_values"
    input_modalities = ("image", "text")
    supports_gradient_checkpointing = True
    _no_split_modules = ["VSSBlock", "BertLayer"]
    # forward takes no **kwargs, so Trainer must not rescale the loss by the world size
    accepts_loss_kwargs = False
    # BERT dispatches eager or sdpa through the config; the fusion always calls SDPA itself (no flash/flex path)
    _supports_sdpa = True

    def set_scan_backend(self, backend: Optional[str]) -> None:
        """The selective-scan backend of the image encoder, for this process only (see
        ``VMambaModel.set_scan_backend``; ``None``: the config's). The config is left as it is."""
        getattr(self, self.base_model_prefix, self).vision_model.set_scan_backend(backend)

    def get_scan_backend(self) -> Optional[str]:
        """The run-time choice of :meth:`set_scan_backend` (``None``: the config's backend is used)."""
        return getattr(self, self.base_model_prefix, self).vision_model.get_scan_backend()

    @torch.no_grad()
    def _init_weights(self, module: nn.Module) -> None:
        # the VMamba and BERT sub-models initialise themselves (transformers dispatches to their own rule)
        if isinstance(module, TasteDirections):
            init.zeros_(module.weight)
        elif isinstance(module, nn.Linear):
            init.trunc_normal_(module.weight, std=self.config.initializer_range)
            if module.bias is not None:
                init.zeros_(module.bias)
        elif isinstance(module, nn.LayerNorm):
            init.ones_(module.weight)
            init.zeros_(module.bias)


class AesMambaModel(AesMambaPreTrainedModel):
    """Encoders and modal-adaptive integration: returns the integrated feature the heads read."""

    def __init__(self, config: AesMambaConfig):
        super().__init__(config)
        self.vision_model = VMambaModel(config.vision_config)
        if config.uses_text:
            self.text_model = BertModel(config.text_config, add_pooling_layer=config.text_add_pooling_layer)
            self.fusion = CrossModalFusion(config)
        else:
            self.text_model = None
            self.fusion = None
        self.post_init()

    def get_input_embeddings(self) -> nn.Module:
        """BERT's word embeddings (M/P): what ``resize_token_embeddings`` and PEFT's input-grad hook use."""
        if self.text_model is None:
            # transformers' convention for models without token embeddings (ConvNext): NotImplementedError
            raise NotImplementedError(f"the {Task(self.config.task).description} variant has no text encoder, "
                                      "hence no input embeddings")
        return self.text_model.get_input_embeddings()

    def set_input_embeddings(self, value: nn.Module) -> None:
        if self.text_model is None:
            raise NotImplementedError(f"the {Task(self.config.task).description} variant has no text encoder")
        self.text_model.set_input_embeddings(value)

    def modal_adaptive_integration(
        self,
        image_features: torch.Tensor,
        input_ids: Optional[torch.Tensor],
        attention_mask: Optional[torch.Tensor],
        token_type_ids: Optional[torch.Tensor],
        output_attentions: bool = False,
        output_hidden_states: Union[bool, list[int], None] = False,
    ) -> tuple[torch.Tensor, Optional[Any], Optional[torch.Tensor]]:
        """Modal-adaptive integration (MAI), the paper's switch between its two paths, decided per call: with
        text (``input_ids``) the text encoder runs and cross-modal fusion (CMF, :class:`CrossModalFusion`) lets
        the pooled image feature attend to the text tokens; without text the pooled image feature is used as
        it is. Returns (integrated feature (B, D), the text encoder's output or None, fusion weights or None).
        """
        if input_ids is None:
            return image_features, None, None
        if self.text_model is None:
            raise ValueError(f"this {self.config.task} model has no text encoder; drop input_ids or use an M/P "
                             "variant")
        if attention_mask is None:
            attention_mask = torch.ones_like(input_ids)
        text = self.text_model(
            input_ids=input_ids, attention_mask=attention_mask, token_type_ids=token_type_ids,
            output_attentions=output_attentions, output_hidden_states=output_hidden_states, return_dict=True,
        )
        integrated, fusion_weights = self.fusion(image_features, text.last_hidden_state, attention_mask,
                                                 output_attentions=output_attentions)
        return integrated, text, fusion_weights

    def forward(
        self,
        pixel_values: torch.Tensor,
        input_ids: Optional[torch.Tensor] = None,
        attention_mask: Optional[torch.Tensor] = None,
        token_type_ids: Optional[torch.Tensor] = None,
        output_attentions: Optional[bool] = None,
        output_hidden_states: Optional[Union[bool, list[int]]] = None,
        return_dict: Optional[bool] = None,
    ) -> Union[tuple, AesMambaModelOutput]:
        """The integrated feature; text is fused when ``input_ids`` are given (M/P). The output flags default to
        the config's fields, read at call time, and are passed down explicitly to both encoders
        (``output_hidden_states`` may list indices: they select in the vision maps and in BERT's states alike)."""
        cfg = self.config
        output_attentions = cfg.output_attentions if output_attentions is None else output_attentions
        output_hidden_states = cfg.output_hidden_states if output_hidden_states is None else output_hidden_states
        return_dict = cfg.return_dict if return_dict is None else return_dict
        vision = self.vision_model(pixel_values, output_hidden_states=output_hidden_states, return_dict=True)
        integrated, text, fusion_weights = self.modal_adaptive_integration(
            vision.pooler_output, input_ids, attention_mask, token_type_ids, output_attentions, output_hidden_states
        )
        # ModelOutput keeps only the fields given here in its tuple/dict views: build it once
        output = AesMambaModelOutput(
            integrated_features=integrated,
            image_features=vision.pooler_output,
            vision_last_hidden_state=vision.last_hidden_state,
            text_last_hidden_state=text.last_hidden_state if text is not None else None,
            hidden_states=vision.hidden_states,
            text_hidden_states=text.hidden_states if text is not None else None,
            attentions=text.attentions if text is not None and output_attentions else None,
            cross_attentions=(fusion_weights,) if fusion_weights is not None else None,
        )
        return output if return_dict else output.to_tuple()


class AesMambaForAestheticAssessment(AesMambaPreTrainedModel):
    """AesMamba with one MBA head per task/attribute; computes the training loss when labels are given."""

    # Module names a PEFT adapter may target (regular expressions over ``named_modules()``, as PEFT's
    # ``target_modules`` takes them): the Linear layers of the MBA heads (residual adapter + score branch) and of
    # the cross-modal fusion block (M/P). Per-user adapters (:mod:`aesmamba_hf.piaa.adapters`) pick from these.
    peft_target_modules = {
        "heads": r"heads\.[^.]+\.(adapter\.(down|up)|score\.fc[12])",
        "fusion": r"aesmamba\.fusion\.(to_q|to_kv|to_out|ffn_in|ffn_out)",
        "taste": r"taste",
    }
    # checkpoints saved before the taste directions existed (and official ones) load with them at zero
    _keys_to_ignore_on_load_missing = [r"^taste\.weight$"]

    def __init__(self, config: AesMambaConfig):
        super().__init__(config)
        self.aesmamba = AesMambaModel(config)
        dim = config.vision_config.hidden_size
        self.heads = nn.ModuleDict({h["name"]: MBAHead(dim, h, config) for h in config.heads})
        scalar = [i for i, h in enumerate(config.heads) if h["kind"] != "distribution"]
        self.taste = TasteDirections(dim, len(scalar)) if scalar else None
        self.taste_columns = scalar  # output column of each row of taste.weight
        self.post_init()

    def forward(
        self,
        pixel_values: torch.Tensor,
        input_ids: Optional[torch.Tensor] = None,
        attention_mask: Optional[torch.Tensor] = None,
        token_type_ids: Optional[torch.Tensor] = None,
        labels: Optional[torch.Tensor] = None,
        class_labels: Optional[torch.Tensor] = None,
        output_attentions: Optional[bool] = None,
        output_hidden_states: Optional[Union[bool, list[int]]] = None,
        return_dict: Optional[bool] = None,
    ) -> Union[tuple, AesMambaAssessmentOutput]:
        r"""
        labels: for a distribution head, (B, K) vote counts or a distribution (normalised here); otherwise
            (B, num_heads) scalar targets ((B,) is accepted for a single head).
        class_labels: (B, num_heads) scale classes; derived from the targets with each head's class rule
            when omitted.
        output_attentions, output_hidden_states, return_dict: as in ``AesMambaModel.forward``.
        """
        return_dict = self.config.return_dict if return_dict is None else return_dict
        base = self.aesmamba(
            pixel_values, input_ids, attention_mask, token_type_ids, output_attentions=output_attentions,
            output_hidden_states=output_hidden_states, return_dict=True,
        )
        features = base.integrated_features
        scores, class_logits, distribution = [], [], None
        for head_cfg in self.config.heads:
            out, logits = self.heads[head_cfg["name"]](features)
            if head_cfg["kind"] == "distribution":
                distribution = out
                bins = torch.as_tensor(head_cfg["bin_values"], dtype=out.dtype, device=out.device)
                out = out @ bins
            scores.append(out)
            if logits is not None:
                class_logits.append(logits)
        scores = torch.stack(scores, dim=1)
        if self.taste is not None:  # zero unless a per-user adapter is active
            scores = scores + self._taste_offsets(features, scores)
        # every class branch shares one size (validated in the config); heads without one are absent
        class_logits = torch.stack(class_logits, dim=1) if class_logits else None
        loss = None
        if labels is not None:
            loss = self.compute_loss(scores, distribution, class_logits, labels, class_labels)
        output = AesMambaAssessmentOutput(
            loss=loss, scores=scores, distribution=distribution, class_logits=class_logits,
            integrated_features=features, hidden_states=base.hidden_states,
            text_hidden_states=base.text_hidden_states, attentions=base.attentions,
            cross_attentions=base.cross_attentions,
        )
        return output if return_dict else output.to_tuple()

    def _taste_offsets(self, features: torch.Tensor, scores: torch.Tensor) -> torch.Tensor:
        """(B, num_heads) taste offsets: the taste rows in their heads' columns, zero for distribution heads."""
        offsets = self.taste(torch.cat([features, features.new_ones(features.shape[0], 1)], dim=1)).to(scores.dtype)
        if len(self.taste_columns) == scores.shape[1]:
            return offsets
        zero = scores.new_zeros(scores.shape[0])
        row = {column: j for j, column in enumerate(self.taste_columns)}
        return torch.stack([offsets[:, row[c]] if c in row else zero for c in range(scores.shape[1])], dim=1)

    def compute_loss(
        self,
        scores: torch.Tensor,
        distribution: Optional[torch.Tensor],
        class_logits: Optional[torch.Tensor],
        labels: torch.Tensor,
        class_labels: Optional[torch.Tensor] = None,
    ) -> torch.Tensor:
        """Σ_heads [γ·MSE + w_emd·EMD (distributions) + λ·L_cls], γ = 10 for distributions, 1 for scalars.

        The scalar MSE is per sample unless ``mse_as_released`` (the released (B,)×(B,1) broadcast)."""
        cfg = self.config
        labels = labels.to(scores.dtype)
        if distribution is not None:
            if labels.dim() != 2 or labels.shape[1] != distribution.shape[1]:
                raise ValueError(
                    f"labels for the distribution head must be (batch, {distribution.shape[1]}) vote counts, "
                    f"got {tuple(labels.shape)}"
                )
            totals = labels.sum(dim=1, keepdim=True)
            if (totals <= 0).any():
                raise ValueError("a label row has no votes (sum ≤ 0); cannot form a distribution")
            target = labels / totals
            loss = cfg.distribution_mse_weight * F.mse_loss(distribution, target)
            if cfg.emd_weight:
                loss = loss + cfg.emd_weight * emd_loss(distribution, target, r=cfg.emd_r)
            bins = torch.as_tensor(cfg.heads[0]["bin_values"], dtype=scores.dtype, device=scores.device)
            target_scores = (target @ bins)[:, None]
        else:
            if labels.dim() == 1:
                labels = labels[:, None]
            if labels.shape[1] != cfg.num_heads:
                raise ValueError(f"labels must be (batch, {cfg.num_heads}) for heads {cfg.head_names}, got "
                                 f"{tuple(labels.shape)}")
            loss = scores.new_zeros(())
            for i in range(cfg.num_heads):
                loss = loss + cfg.scalar_mse_weight * scalar_mse(scores[:, i], labels[:, i], cfg.mse_as_released)
            target_scores = labels
        if class_logits is not None and cfg.cls_weight:
            loss = loss + cfg.cls_weight * self._class_loss(class_logits, target_scores, class_labels)
        return loss

    def _class_loss(self, class_logits, target_scores, class_labels) -> torch.Tensor:
        cfg = self.config
        class_heads = [(i, h) for i, h in enumerate(cfg.heads) if h.get("num_scale_classes", 0)]
        if class_labels is not None and class_labels.dim() == 1:
            class_labels = class_labels[:, None]
        total = class_logits.new_zeros(())
        for j, (i, head) in enumerate(class_heads):
            if class_labels is not None:
                target = class_labels[:, i].long()
            else:
                target = scale_classes(target_scores[:, i], head["class_scale"], head["class_offset"],
                                       head["num_scale_classes"])
            logits = class_logits[:, j]
            if cfg.classification_loss == "bce_as_released":
                total = total + bce_as_released(logits, target)
            else:
                total = total + balanced_softmax_loss(logits, target, head.get("class_counts") or None)
        return total


__all__ = [
    "AesMambaModel",
    "AesMambaForAestheticAssessment",
    "AesMambaPreTrainedModel",
    "AesMambaModelOutput",
    "AesMambaAssessmentOutput",
    "CrossModalFusion",
    "MBAHead",
]
