using DiffusersSharp.Loading.SingleFile;

namespace DiffusersSharp.Pipelines.SingleFile;

/// <summary>
/// What an original config (<c>v1-inference.yaml</c>, <c>v2-inference-v.yaml</c>, <c>sd_xl_base.yaml</c>, …) says that the
/// conversion needs: the UNet (<c>unet_config</c>, or SGM's <c>network_config</c>), the VAE (<c>first_stage_config.params.ddconfig</c>),
/// the text encoders (<c>cond_stage_config</c> or SGM's <c>conditioner_config</c> targets), the noise schedule and the
/// prediction type. Read from the YAML (<see cref="FromYaml"/>) or inferred from a file's keys and shapes
/// (<see cref="LdmInference"/>); either way it becomes diffusers configs through <see cref="DiffusersConfigs"/>.
/// </summary>
public sealed record LdmConfig
{
    /// <summary>
    /// <c>model.params.parameterization</c>: "v" for v-prediction models (SD 2.x 768), null or "eps" for epsilon.
    /// </summary>
    public string? Parameterization { get; init; }
    /// <summary><c>linear_start</c>: the first beta of the training schedule (diffusers' <c>beta_start</c>).</summary>
    public double? LinearStart { get; init; }
    /// <summary><c>linear_end</c>: the last beta of the training schedule (diffusers' <c>beta_end</c>).</summary>
    public double? LinearEnd { get; init; }
    /// <summary><c>timesteps</c>: length of the training schedule (diffusers' <c>num_train_timesteps</c>).</summary>
    public int? Timesteps { get; init; }
    /// <summary>
    /// <c>scale_factor</c>: the latent scaling factor (diffusers' VAE <c>scaling_factor</c>; 0.18215 for SD).
    /// </summary>
    public double? ScaleFactor { get; init; }

    /// <summary>SGM (SDXL) configs put the UNet under <c>network_config</c>.</summary>
    public bool IsSgm { get; init; }

    /// <summary><c>model_channels</c>: the UNet's base width (the first block's channels).</summary>
    public required int ModelChannels { get; init; }
    /// <summary>
    /// <c>channel_mult</c>: per level, the multiple of model_channels (diffusers' <c>block_out_channels</c> /
    /// model_channels).
    /// </summary>
    public required int[] ChannelMult { get; init; }
    /// <summary><c>num_res_blocks</c>: resnets per down level (diffusers' <c>layers_per_block</c>).</summary>
    public required int NumResBlocks { get; init; }
    /// <summary>
    /// <c>attention_resolutions</c>: the downsampling factors (1, 2, 4, …) whose levels have attention.
    /// </summary>
    public required int[] AttentionResolutions { get; init; }
    /// <summary>
    /// <c>num_heads</c>: attention heads per level; null when <see cref="NumHeadChannels"/> is given instead.
    /// </summary>
    public int? NumHeads { get; init; }
    /// <summary>
    /// <c>num_head_channels</c>: channels per attention head (SD 2.x: 64); null when <see cref="NumHeads"/> is given.
    /// </summary>
    public int? NumHeadChannels { get; init; }
    /// <summary>
    /// <c>use_linear_in_transformer</c>: linear proj_in/proj_out in the transformers (diffusers'
    /// <c>use_linear_projection</c>).
    /// </summary>
    public bool UseLinearInTransformer { get; init; }

    /// <summary><c>transformer_depth</c>: one value (<see cref="TransformerDepthIsList"/> false) or one per level.</summary>
    public int[] TransformerDepth { get; init; } = [1];
    /// <summary>
    /// Whether <c>transformer_depth</c> was a list in the file (SDXL), which decides the diffusers config's form.
    /// </summary>
    public bool TransformerDepthIsList { get; init; }
    /// <summary>
    /// <c>context_dim</c>: width of the text encoder states the cross-attention reads (diffusers'
    /// <c>cross_attention_dim</c>).
    /// </summary>
    public int? ContextDim { get; init; }
    /// <summary><c>in_channels</c>: the UNet's input channels (4; 9 for inpainting).</summary>
    public required int InChannels { get; init; }
    /// <summary><c>out_channels</c>: the UNet's output channels.</summary>
    public required int OutChannels { get; init; }

    /// <summary><c>num_classes</c>: <c>"sequential"</c> (SDXL's vector conditioning), an integer as text, or null.</summary>
    public string? NumClasses { get; init; }
    /// <summary>
    /// <c>adm_in_channels</c>: width of SDXL's vector conditioning (pooled text embeds + time ids); null when absent.
    /// </summary>
    public int? AdmInChannels { get; init; }
    /// <summary>
    /// <c>disable_self_attentions</c>: per level, whether the transformers skip self-attention (diffusers'
    /// <c>only_cross_attention</c>).
    /// </summary>
    public bool[]? DisableSelfAttentions { get; init; }

    /// <summary><c>ddconfig.ch</c>: the VAE's base width.</summary>
    public required int VaeCh { get; init; }
    /// <summary><c>ddconfig.ch_mult</c>: the VAE's per-level width multiples.</summary>
    public required int[] VaeChMult { get; init; }
    /// <summary><c>ddconfig.num_res_blocks</c>: the VAE's resnets per level.</summary>
    public required int VaeNumResBlocks { get; init; }
    /// <summary><c>ddconfig.z_channels</c>: the VAE's latent channels.</summary>
    public required int ZChannels { get; init; }
    /// <summary><c>ddconfig.in_channels</c>: channels of the images the VAE encodes.</summary>
    public int VaeInChannels { get; init; } = 3;
    /// <summary><c>ddconfig.out_ch</c>: channels of the images the VAE decodes.</summary>
    public int VaeOutCh { get; init; } = 3;

    /// <summary>The text encoder classes (last part of each <c>target</c>): <c>FrozenCLIPEmbedder</c>, <c>FrozenOpenCLIPEmbedder</c>, …</summary>
    public IReadOnlyList<string> TextEncoders { get; init; } = [];

    /// <summary>Where the values came from (the YAML file, or the checkpoint for inferred ones), for messages.</summary>
    public string Source { get; init; } = "";

    /// <summary>Reads an original YAML config; a missing or ill-typed key is a <see cref="ConfigException"/> naming it.</summary>
    public static LdmConfig FromYaml(YamlNode root)
    {
        var model = root.Require("model");
        var mp = model.Require("params");
        bool sgm = mp["unet_config"] is not { IsNull: false } && mp["network_config"] is { IsNull: false };
        var unet = (sgm ? mp.Require("network_config") : mp.Require("unet_config")).Require("params");
        var dd = mp.Require("first_stage_config").Require("params").Require("ddconfig");

        var texts = new List<string>();
        if (mp["cond_stage_config"] is { IsNull: false } cond) texts.Add(Target(cond));
        if (mp.At("conditioner_config.params.emb_models") is { IsSequence: true } emb)
            foreach (var m in emb.Items)
            {
                string t = Target(m);
                if (t.Contains("CLIP", StringComparison.Ordinal)) texts.Add(t);
            }

        var depth = unet["transformer_depth"];
        var context = unet["context_dim"];
        return new LdmConfig
        {
            Source = root.Source,
            Parameterization = mp["parameterization"] is { IsNull: false } p ? p.AsString() : null,
            LinearStart = mp["linear_start"] is { IsNull: false } ls ? ls.AsDouble() : null,
            LinearEnd = mp["linear_end"] is { IsNull: false } le ? le.AsDouble() : null,
            Timesteps = mp["timesteps"] is { IsNull: false } ts ? ts.AsInt() : null,
            ScaleFactor = mp["scale_factor"] is { IsNull: false } sf ? sf.AsDouble() : null,
            IsSgm = sgm,
            ModelChannels = unet.Require("model_channels").AsInt(),
            ChannelMult = unet.Require("channel_mult").AsIntList(),
            NumResBlocks = unet.Require("num_res_blocks").AsInt(),
            AttentionResolutions = unet.Require("attention_resolutions").AsIntList(),
            NumHeads = unet["num_heads"] is { IsNull: false } nh ? nh.AsInt() : null,
            NumHeadChannels = unet["num_head_channels"] is { IsNull: false } nhc ? nhc.AsInt() : null,
            UseLinearInTransformer = unet["use_linear_in_transformer"] is { IsNull: false } ul && ul.AsBool(),
            TransformerDepth = depth is { IsNull: false } ? depth.AsIntList() : [1],
            TransformerDepthIsList = depth is { IsSequence: true },
            ContextDim = context is { IsNull: false } ? context.AsIntList()[0] : null,
            InChannels = unet.Require("in_channels").AsInt(),
            OutChannels = unet.Require("out_channels").AsInt(),
            NumClasses = unet["num_classes"] is { IsNull: false } nc ? nc.AsString() : null,
            AdmInChannels = unet["adm_in_channels"] is { IsNull: false } adm ? adm.AsInt() : null,
            DisableSelfAttentions = unet["disable_self_attentions"] is { IsSequence: true } ds ? ds.Items.Select(i => i.AsBool()).ToArray() : null,
            VaeCh = dd.Require("ch").AsInt(),
            VaeChMult = dd.Require("ch_mult").AsIntList(),
            VaeNumResBlocks = dd.Require("num_res_blocks").AsInt(),
            ZChannels = dd.Require("z_channels").AsInt(),
            VaeInChannels = dd["in_channels"] is { IsNull: false } vi ? vi.AsInt() : 3,
            VaeOutCh = dd["out_ch"] is { IsNull: false } vo ? vo.AsInt() : 3,
            TextEncoders = texts,
        };
    }

    private static string Target(YamlNode node) => node.Require("target").AsString().Split('.')[^1];
}
