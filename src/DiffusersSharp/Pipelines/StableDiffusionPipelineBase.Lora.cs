using DiffusersSharp.Loading.Lora;
using DiffusersSharp.Models.Lora;

namespace DiffusersSharp.Pipelines;

public abstract partial class StableDiffusionPipelineBase : ILoraPipeline
{
    /// <summary>The models a LoRA file may patch: the UNet (<c>unet</c>) and the text encoder (<c>text_encoder</c>).</summary>
    public IReadOnlyList<LoraTarget> LoraTargets => [LoraTarget.ForUnet(Unet), LoraTarget.ForTextEncoder("text_encoder", TextEncoder)];

    /// <summary>
    /// diffusers' <c>load_lora_weights(path, adapter_name, weight_name)</c>: a LoRA file (<c>.safetensors</c> / <c>.bin</c>), a
    /// folder or a Hugging Face Hub id (<c>latent-consistency/lcm-lora-sdv1-5</c>: only the chosen file is downloaded into
    /// the Hub cache) holding it, <paramref name="weightName"/> or else <c>pytorch_lora_weights.*</c> or the single other
    /// .safetensors / .bin file (<see cref="LoraFile.Locate"/>), in diffusers', PEFT's or kohya's layout, applied at run time to the UNet and
    /// text-encoder layers it names. Without <paramref name="adapterName"/> a second load replaces the first where both
    /// name a layer (diffusers 0.25.1); named adapters stack, weighted by <paramref name="scale"/> (see
    /// <see cref="SetAdapters"/>). Keys no layer takes are refused unless <paramref name="ignoreUnknownKeys"/>; a file for
    /// another architecture is refused naming a key and both shapes; NaN or infinite values are refused. Nothing changes
    /// when the file is refused.
    /// </summary>
    public LoraLoadResult LoadLoraWeights(string path, string? adapterName = null, double scale = 1.0, bool ignoreUnknownKeys = false,
                                          string? weightName = null) =>
        LoadLoraWeights(path, new LoraLoadOptions { AdapterName = adapterName, Scale = scale, IgnoreUnknownKeys = ignoreUnknownKeys, WeightName = weightName });

    /// <summary>
    /// <see cref="LoadLoraWeights(string, string?, double, bool, string?)"/> with all options (notes go to <see cref="Log"/>
    /// unless set; a Hub id's revision, cache and Hub settings in <see cref="LoraLoadOptions.Source"/>).
    /// </summary>
    public LoraLoadResult LoadLoraWeights(string path, LoraLoadOptions options)
    {
        Require(LoaderMixins.Lora, nameof(LoadLoraWeights), "load_lora_weights");
        return PipelineLora.Load(path, LoraTargets, options, Log);
    }

    /// <summary>
    /// diffusers' <c>fuse_lora(lora_scale)</c>: the active LoRAs are folded into the weights
    /// (<c>W + lora_scale · up · down · alpha / rank</c>) so that steps cost what they cost without LoRA. Returns the
    /// number of layers fused.
    /// </summary>
    public int FuseLora(double loraScale = 1.0, bool fuseUnet = true, bool fuseTextEncoder = true)
    {
        Require(LoaderMixins.Lora, nameof(FuseLora), "fuse_lora");
        return PipelineLora.Fuse(LoraTargets, loraScale, fuseUnet, fuseTextEncoder);
    }

    /// <summary>diffusers' <c>unfuse_lora()</c>: the weights from before <see cref="FuseLora"/>, bit for bit.</summary>
    public int UnfuseLora(bool unfuseUnet = true, bool unfuseTextEncoder = true)
    {
        Require(LoaderMixins.Lora, nameof(UnfuseLora), "unfuse_lora");
        return PipelineLora.Unfuse(LoraTargets, unfuseUnet, unfuseTextEncoder);
    }

    /// <summary>diffusers' <c>unload_lora_weights()</c>: every LoRA removed (fused weights stay fused, as in 0.25.1).</summary>
    public void UnloadLoraWeights()
    {
        Require(LoaderMixins.Lora, nameof(UnloadLoraWeights), "unload_lora_weights");
        LoraLoader.Unload(LoraTargets);
    }

    /// <summary>
    /// diffusers' <c>set_adapters(names, weights)</c>: only these named adapters apply, each with its weight; their updates
    /// add up. (diffusers 0.25.1 needs PEFT for this; here it works on every LoRA-compatible layer.)
    /// </summary>
    public void SetAdapters(IReadOnlyList<string> adapterNames, IReadOnlyList<double>? weights = null)
    {
        Require(LoaderMixins.Lora, nameof(SetAdapters), "set_adapters");
        LoraLoader.SetAdapters(LoraTargets, adapterNames, weights);
    }

    /// <summary>The names of the loaded adapters (diffusers' <c>get_list_adapters</c>, flattened).</summary>
    public IReadOnlyList<string> LoraAdapterNames => LoraLoader.AdapterNames(LoraTargets);
}
