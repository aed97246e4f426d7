using DiffusersSharp.Models;
using DiffusersSharp.Schedulers;
using DiffusersSharp.Text;
using TorchSharp;
using static TorchSharp.torch;

namespace DiffusersSharp.Pipelines;

/// <summary>
/// What diffusers' SDXL ControlNet pipelines (txt2img, img2img, inpaint; 0.25.1) share beyond
/// <see cref="StableDiffusionXLPipelineBase"/>: the <c>controlnet</c> component (one <see cref="ControlNetModel"/> or a
/// <see cref="MultiControlNetModel"/>), owned by the pipeline, the checks that each net fits the UNet and both text
/// encoders (cross_attention_dim = the two encoders' widths, the same blocks), and the <see cref="ControlNetSet"/> the
/// pipelines' calls use for the control images, scales, guidance windows and residuals.
/// </summary>
public abstract class StableDiffusionXLControlNetPipelineBase : StableDiffusionXLPipelineBase
{
    private readonly nn.Module _controlnet;

    private protected StableDiffusionXLControlNetPipelineBase(IVae vae, CLIPTextModel textEncoder, CLIPTokenizer tokenizer,
        CLIPTextModelWithProjection textEncoder2, CLIPTokenizer tokenizer2, UNet2DConditionModel unet, nn.Module controlnet,
        IScheduler scheduler, bool forceZerosForEmptyPrompt, bool requiresAestheticsScore, Action<string>? log)
        : base(vae, textEncoder ?? throw new ArgumentNullException(nameof(textEncoder)), tokenizer, textEncoder2, tokenizer2, unet,
            scheduler, forceZerosForEmptyPrompt, requiresAestheticsScore, log)
    {
        _controlnet = controlnet;
        Set = new ControlNetSet(controlnet, ClassName, VaeScaleFactor);
        int hidden = textEncoder.Config.HiddenSize + textEncoder2.Config.HiddenSize;
        for (int k = 0; k < Nets.Count; k++)
            StableDiffusionControlNetPipelineBase.CheckControlNetFits(Nets[k], k, unet, hidden, vae.LatentChannels);
        foreach (var net in Nets) net.eval();
    }

    /// <summary>The control images, scales, guidance windows and residuals of the nets.</summary>
    private protected ControlNetSet Set { get; }

    /// <summary>The <c>controlnet</c> component as given: a <see cref="ControlNetModel"/> or a <see cref="MultiControlNetModel"/>.</summary>
    public nn.Module Controlnet => _controlnet;

    /// <summary>The ControlNets, in order (one for a single <see cref="ControlNetModel"/>).</summary>
    public IReadOnlyList<ControlNetModel> Nets => Set.Nets;

    /// <inheritdoc/>
    public override IReadOnlyDictionary<string, object> Components => new Dictionary<string, object>(base.Components)
    {
        ["controlnet"] = _controlnet,
    };
}
