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
    public string? Parameterization { get; init; }
    public double? LinearStart { get; init; }
    public double? LinearEnd { get; init; }
    public int? Timesteps { get; init; }
    public double? ScaleFactor { get; init; }

    /// <summary>SGM (SDXL) configs put the UNet under <c>network_config</c>.</summary>
    public bool IsSgm { get; init; }

    public required int ModelChannels { get; init; }
    public required int[] ChannelMult { get; init; }
    public required int NumResBlocks { get; init; }
    public required int[] AttentionResolutions { get; init; }
    public int? NumHeads { get; init; }
    public int? NumHeadChannels { get; init; }
    public bool UseLinearInTransformer { get; init; }

    /// <summary><c>transformer_depth</c>: one value (<see cref="TransformerDepthIsList"/> false) or one per level.</summary>
    public int[] TransformerDepth { get; init; } = [1];
    public bool TransformerDepthIsList { get; init; }
    public int? ContextDim { get; init; }
    public required int InChannels { get; init; }
    public required int OutChannels { get; init; }

    /// <summary><c>num_classes</c>: <c>"sequential"</c> (SDXL's vector conditioning), an integer as text, or null.</summary>
    public string? NumClasses { get; init; }
    public int? AdmInChannels { get; init; }
    public bool[]? DisableSelfAttentions { get; init; }

    public required int VaeCh { get; init; }
    public required int[] VaeChMult { get; init; }
    public required int VaeNumResBlocks { get; init; }
    public required int ZChannels { get; init; }
    public int VaeInChannels { get; init; } = 3;
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
