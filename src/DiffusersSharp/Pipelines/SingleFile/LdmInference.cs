using System.Text.RegularExpressions;
using DiffusersSharp.Loading.SingleFile;
using DiffusersSharp.Models;

namespace DiffusersSharp.Pipelines.SingleFile;

/// <summary>
/// What a single file's keys and shapes say about its architecture when no config is given. Widths, depths, level
/// counts, attention placement, linear or convolutional projections, cross-attention and addition-embedding sizes
/// and input channels (9 for inpainting) are read from the shapes; what shapes cannot tell comes from the family,
/// as diffusers' standard configs have it: SD 1.x 8 heads per attention, SD 2.x and SDXL 64 channels per head, SD
/// 2.x v-prediction with the noise schedule 0.00085–0.012 over 1000 steps, the VAE scaling factor (0.18215, SDXL
/// 0.13025), and the CLIP text towers' 64-channel heads and activations (quick_gelu for OpenAI CLIP, gelu for OpenCLIP).
/// </summary>
public static class LdmInference
{
    private const string U = UNetKeyRules.Prefix;
    private const string V = VaeKeyRules.Prefix;

    /// <summary>The <see cref="LdmConfig"/> the file's shapes describe, for a file of <paramref name="family"/>.</summary>
    public static LdmConfig Infer(OriginalCheckpoint ckpt, StableDiffusionFamily family)
    {
        long[] S(string key) => ckpt.Shape(key) ?? throw Missing(ckpt, key);
        bool Has(string key) => ckpt.Contains(key);

        var convIn = S(U + "input_blocks.0.0.weight");
        int modelChannels = (int)convIn[0];
        int maxInput = Indices(ckpt, U + "input_blocks.").DefaultIfEmpty(0).Max();
        var resnets = new List<int> { 0 };
        var mult = new List<int>();
        var depth = new Dictionary<int, int>();
        bool linear = false;
        int? context = null;
        for (int i = 1; i <= maxInput; i++)
        {
            string b = $"{U}input_blocks.{i}.";
            if (Has(b + "0.op.weight")) { resnets.Add(0); continue; }
            int level = resnets.Count - 1;
            long ch = S(b + "0.out_layers.3.weight")[0];
            if (resnets[level]++ == 0) mult.Add(Multiple(ckpt, b + "0.out_layers.3.weight", ch, modelChannels));
            if (!Has(b + "1.proj_in.weight")) continue;
            linear = S(b + "1.proj_in.weight").Length == 2;
            depth[level] = Indices(ckpt, b + "1.transformer_blocks.").Count();
            int ctx = (int)S(b + "1.transformer_blocks.0.attn2.to_k.weight")[1];
            if (context is int c0 && c0 != ctx)
                throw new WeightsException($"{ckpt.Path}: '{b}1.transformer_blocks.0.attn2.to_k.weight' takes {ctx} context channels, other blocks {c0}")
                { FilePath = ckpt.Path, Key = b + "1.transformer_blocks.0.attn2.to_k.weight" };
            context = ctx;
        }
        if (mult.Count != resnets.Count || resnets.Distinct().Count() != 1)
            throw new WeightsException(
                $"{ckpt.Path}: the UNet's levels have {string.Join(", ", resnets)} resnets; a single file's UNet has the same number at every level")
            { FilePath = ckpt.Path, Key = U + "input_blocks.1.0.in_layers.0.weight" };

        int midDepth = Indices(ckpt, U + "middle_block.1.transformer_blocks.").Count();
        int n = mult.Count;
        var attentionDepths = depth.Values.Append(midDepth).Distinct().ToList();
        bool depthList = attentionDepths.Count > 1;
        int[] depths = Enumerable.Range(0, n).Select(l => depth.TryGetValue(l, out int d) ? d : l == n - 1 ? midDepth : 1).ToArray();
        if (depthList && depths[^1] != midDepth)
            throw new WeightsException($"{ckpt.Path}: the middle block has {midDepth} transformer layers, the last level {depths[^1]}; diffusers' UNet needs them equal")
            { FilePath = ckpt.Path, Key = U + "middle_block.1.transformer_blocks.0.attn1.to_q.weight" };

        bool sd1 = family == StableDiffusionFamily.StableDiffusion1;
        bool xl = CheckpointInspection.IsXl(family);
        var vaeIn = S(V + "encoder.conv_in.weight");
        int vaeCh = (int)vaeIn[0];
        int vaeLevels = Indices(ckpt, V + "encoder.down.").Count();
        return new LdmConfig
        {
            Source = ckpt.Path,
            Parameterization = family == StableDiffusionFamily.StableDiffusion2 ? "v" : null,
            LinearStart = 0.00085,
            LinearEnd = 0.012,
            Timesteps = 1000,
            ScaleFactor = xl ? 0.13025 : 0.18215,
            IsSgm = xl,
            ModelChannels = modelChannels,
            ChannelMult = mult.ToArray(),
            NumResBlocks = resnets[0],
            AttentionResolutions = depth.Keys.Order().Select(l => 1 << l).ToArray(),
            NumHeads = sd1 ? 8 : null,
            NumHeadChannels = sd1 ? null : 64,
            UseLinearInTransformer = linear,
            TransformerDepth = depthList ? depths : [attentionDepths[0]],
            TransformerDepthIsList = depthList,
            ContextDim = context,
            InChannels = (int)convIn[1],
            OutChannels = (int)S(U + "out.2.weight")[0],
            NumClasses = Has(U + "label_emb.0.0.weight") ? "sequential" : null,
            AdmInChannels = Has(U + "label_emb.0.0.weight") ? (int)S(U + "label_emb.0.0.weight")[1] : null,
            VaeCh = vaeCh,
            VaeChMult = Enumerable.Range(0, vaeLevels)
                .Select(i => Multiple(ckpt, $"{V}encoder.down.{i}.block.0.conv2.weight", S($"{V}encoder.down.{i}.block.0.conv2.weight")[0], vaeCh)).ToArray(),
            VaeNumResBlocks = Indices(ckpt, V + "encoder.down.0.block.").Count(),
            ZChannels = (int)S(V + "decoder.conv_in.weight")[1],
            VaeInChannels = (int)vaeIn[1],
            VaeOutCh = (int)S(V + "decoder.conv_out.weight")[0],
        };
    }

    /// <summary>
    /// The config of the OpenAI CLIP text encoder stored under <paramref name="prefix"/> (transformers' keys): the
    /// published <c>openai/clip-vit-large-patch14</c> text config when the shapes are ViT-L's, in general the widths and
    /// depth of the file with 64-channel heads.
    /// </summary>
    public static CLIPTextConfig OpenAiTextConfig(OriginalCheckpoint ckpt, string prefix)
    {
        long[] S(string key) => ckpt.Shape(key) ?? throw Missing(ckpt, key);
        var tokens = S(prefix + "text_model.embeddings.token_embedding.weight");
        int hidden = (int)tokens[1];
        return new CLIPTextConfig
        {
            VocabSize = (int)tokens[0],
            HiddenSize = hidden,
            IntermediateSize = (int)S(prefix + "text_model.encoder.layers.0.mlp.fc1.weight")[0],
            ProjectionDim = hidden,
            NumHiddenLayers = Indices(ckpt, prefix + "text_model.encoder.layers.").Count(),
            NumAttentionHeads = Heads(ckpt, prefix + "text_model.embeddings.token_embedding.weight", hidden),
            MaxPositionEmbeddings = (int)S(prefix + "text_model.embeddings.position_embedding.weight")[0],
            HiddenAct = "quick_gelu",
            BosTokenId = 0,
            EosTokenId = 2,
            PadTokenId = 1,
        };
    }

    /// <summary>
    /// The config of the OpenCLIP text encoder under <paramref name="prefix"/> as diffusers uses it: SD 2.x takes the
    /// penultimate layer, so OpenCLIP-H's 24 blocks make a 23-layer encoder (a file written from diffusers, with 23, stays
    /// 23) and its config keeps the published projection_dim 512; SDXL keeps every block and the projection.
    /// </summary>
    public static CLIPTextConfig OpenClipTextConfig(OriginalCheckpoint ckpt, string prefix, bool sd2)
    {
        long[] S(string key) => ckpt.Shape(key) ?? throw Missing(ckpt, key);
        var tokens = S(prefix + "token_embedding.weight");
        int hidden = (int)tokens[1];
        int blocks = Indices(ckpt, prefix + "transformer.resblocks.").Count();
        return new CLIPTextConfig
        {
            VocabSize = (int)tokens[0],
            HiddenSize = hidden,
            IntermediateSize = (int)S(prefix + "transformer.resblocks.0.mlp.c_fc.weight")[0],
            ProjectionDim = sd2 ? 512 : (int)S(prefix + "text_projection")[1],
            NumHiddenLayers = sd2 && blocks == 24 ? 23 : blocks,
            NumAttentionHeads = Heads(ckpt, prefix + "token_embedding.weight", hidden),
            MaxPositionEmbeddings = (int)S(prefix + "positional_embedding")[0],
            HiddenAct = "gelu",
            BosTokenId = 0,
            EosTokenId = 2,
            PadTokenId = 1,
        };
    }

    private static int Heads(OriginalCheckpoint ckpt, string key, int hidden) =>
        hidden % 64 == 0 ? hidden / 64 : throw new ConfigException(
            $"{ckpt.Path}: the text encoder is {hidden} wide ('{key}'), not a multiple of the standard 64 channels per head, so its " +
            "number of attention heads cannot be inferred; pass the text encoder, or a diffusers folder whose configs to use")
        { FilePath = ckpt.Path, Key = key };

    private static int Multiple(OriginalCheckpoint ckpt, string key, long channels, int baseChannels) =>
        channels % baseChannels == 0 ? (int)(channels / baseChannels) : throw new WeightsException(
            $"{ckpt.Path}: '{key}' has {channels} channels, not a multiple of the first level's {baseChannels}")
        { FilePath = ckpt.Path, Key = key };

    /// <summary>The distinct integers that follow <paramref name="prefix"/> in the file's keys (<c>input_blocks.{i}.</c>).</summary>
    public static IEnumerable<int> Indices(OriginalCheckpoint ckpt, string prefix)
    {
        var re = new Regex("^" + Regex.Escape(prefix) + @"(\d+)\.");
        return ckpt.Shapes.Keys.Select(k => re.Match(k)).Where(m => m.Success).Select(m => int.Parse(m.Groups[1].Value)).Distinct().Order();
    }

    private static WeightsException Missing(OriginalCheckpoint ckpt, string key) =>
        new($"{ckpt.Path}: missing key '{key}' (the file is incomplete, truncated, or not the layout its other keys suggest)")
        { FilePath = ckpt.Path, Key = key };
}
