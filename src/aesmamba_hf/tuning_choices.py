"""The named choices of fine-tuning runs, in one module light enough for the command line to offer them without
importing the training stack (``aesmamba piaa`` / ``aesmamba personalize`` list them as ``choices``)."""

TUNE_CHOICES = ("all", "fusion_heads", "heads")  # the parts a fine-tuning run trains (training.finetune)
ADAPTER_KINDS = ("lora_heads", "lora_fusion_heads", "heads", "taste")  # per-user PEFT adapters (piaa.adapters)
DEFAULT_ADAPTER_KIND = "lora_heads"
SELECTION_CHOICES = ("last", "validation", "folds")  # how a PIAA run's weights are chosen (piaa.protocol)
