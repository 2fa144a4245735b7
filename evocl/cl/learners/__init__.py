"""Learners, one per model family: ``encoder`` (classifier over mean-pooled hidden states)
and ``causal_lm`` (next-token loss on the target tokens). See `base.py` for the interface."""

from evocl.registry import Registry

LEARNERS = Registry("learner", {
    "encoder": ("evocl.cl.learners.classifier:ClassifierLearner",
                "encoder + LoRA, mean pooling, linear head; class accuracy"),
    "causal_lm": ("evocl.cl.learners.causal_lm:CausalLMLearner",
                  "causal LM + LoRA; loss on target tokens; teacher-forced token accuracy"),
})
