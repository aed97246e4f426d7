namespace DiffusersSharp.Loading.Lora;

/// <summary>The key layout of a LoRA file.</summary>
public enum LoraFormat
{
    /// <summary>diffusers' <c>save_lora_weights</c>: <c>unet.&lt;module&gt;.lora.down/up.weight</c>, <c>text_encoder.…lora_linear_layer.down/up.weight</c> (and the older attention-processor names).</summary>
    Diffusers,

    /// <summary>PEFT's layout, as newer diffusers write it: <c>&lt;component&gt;.&lt;module&gt;.lora_A/lora_B.weight</c>.</summary>
    Peft,

    /// <summary>kohya-ss / A1111: <c>lora_unet_…</c>, <c>lora_te_…</c> (SDXL <c>lora_te1_</c>/<c>lora_te2_</c>), <c>.lora_down/.lora_up.weight</c>, <c>.alpha</c>.</summary>
    Kohya,
}
