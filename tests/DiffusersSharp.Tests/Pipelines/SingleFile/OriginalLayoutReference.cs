using DiffusersSharp.Pipelines.SingleFile;

namespace DiffusersSharp.Tests.Pipelines.SingleFile;

/// <summary>
/// The keys and shapes of a checkpoint in the original layout, enumerated the way the original code builds its modules
/// (LDM/SGM <c>openaimodel.UNetModel</c>: ResBlock, SpatialTransformer, Downsample/Upsample in <c>input_blocks</c>,
/// <c>middle_block</c>, <c>output_blocks</c>; <c>model.Encoder</c>/<c>Decoder</c>; transformers' CLIPTextModel; OpenCLIP's text
/// tower), from the original config's numbers. Independent of the library's key rules: the tests compare the two.
/// </summary>
internal static class OriginalLayoutReference
{
    public static Dictionary<string, long[]> UNet(LdmConfig l, string prefix = "model.diffusion_model.")
    {
        var d = new Dictionary<string, long[]>(StringComparer.Ordinal);
        void Add(string k, params long[] shape) => d[prefix + k] = shape;
        void Conv(string k, long o, long i, long kernel) { Add(k + ".weight", o, i, kernel, kernel); Add(k + ".bias", o); }
        void Linear(string k, long o, long i, bool bias = true) { Add(k + ".weight", o, i); if (bias) Add(k + ".bias", o); }
        void Norm(string k, long c) { Add(k + ".weight", c); Add(k + ".bias", c); }
        long mc = l.ModelChannels, emb = mc * 4;
        void ResBlock(string k, long ch, long outCh)
        {
            Norm(k + ".in_layers.0", ch); Conv(k + ".in_layers.2", outCh, ch, 3);
            Linear(k + ".emb_layers.1", outCh, emb);
            Norm(k + ".out_layers.0", outCh); Conv(k + ".out_layers.3", outCh, outCh, 3);
            if (outCh != ch) Conv(k + ".skip_connection", outCh, ch, 1);
        }
        void SpatialTransformer(string k, long ch, int depth)
        {
            Norm(k + ".norm", ch);
            if (l.UseLinearInTransformer) Linear(k + ".proj_in", ch, ch); else Conv(k + ".proj_in", ch, ch, 1);
            for (int b = 0; b < depth; b++)
            {
                string t = $"{k}.transformer_blocks.{b}";
                foreach (var attn in new[] { "attn1", "attn2" })
                {
                    long ctx = attn == "attn1" ? ch : l.ContextDim!.Value;
                    Linear($"{t}.{attn}.to_q", ch, ch, false); Linear($"{t}.{attn}.to_k", ch, ctx, false); Linear($"{t}.{attn}.to_v", ch, ctx, false);
                    Linear($"{t}.{attn}.to_out.0", ch, ch);
                }
                Linear($"{t}.ff.net.0.proj", ch * 8, ch); Linear($"{t}.ff.net.2", ch, ch * 4);
                Norm($"{t}.norm1", ch); Norm($"{t}.norm2", ch); Norm($"{t}.norm3", ch);
            }
            if (l.UseLinearInTransformer) Linear(k + ".proj_out", ch, ch); else Conv(k + ".proj_out", ch, ch, 1);
        }
        int Depth(int level) => l.TransformerDepthIsList ? l.TransformerDepth[level] : l.TransformerDepth[0];

        Linear("time_embed.0", emb, mc); Linear("time_embed.2", emb, emb);
        if (l.NumClasses == "sequential") { Linear("label_emb.0.0", emb, l.AdmInChannels!.Value); Linear("label_emb.0.2", emb, emb); }
        Conv("input_blocks.0.0", mc, l.InChannels, 3);
        var chans = new Stack<long>();
        chans.Push(mc);
        long ch = mc;
        int ds = 1, block = 1;
        for (int level = 0; level < l.ChannelMult.Length; level++)
        {
            for (int r = 0; r < l.NumResBlocks; r++, block++)
            {
                ResBlock($"input_blocks.{block}.0", ch, mc * l.ChannelMult[level]);
                ch = mc * l.ChannelMult[level];
                if (l.AttentionResolutions.Contains(ds)) SpatialTransformer($"input_blocks.{block}.1", ch, Depth(level));
                chans.Push(ch);
            }
            if (level != l.ChannelMult.Length - 1)
            {
                Conv($"input_blocks.{block++}.0.op", ch, ch, 3);
                chans.Push(ch);
                ds *= 2;
            }
        }
        ResBlock("middle_block.0", ch, ch);
        SpatialTransformer("middle_block.1", ch, l.TransformerDepthIsList ? l.TransformerDepth[^1] : l.TransformerDepth[0]);
        ResBlock("middle_block.2", ch, ch);
        block = 0;
        for (int level = l.ChannelMult.Length - 1; level >= 0; level--)
        {
            for (int i = 0; i <= l.NumResBlocks; i++, block++)
            {
                long skip = chans.Pop(), outCh = mc * l.ChannelMult[level];
                int layer = 0;
                ResBlock($"output_blocks.{block}.{layer++}", ch + skip, outCh);
                ch = outCh;
                if (l.AttentionResolutions.Contains(ds)) SpatialTransformer($"output_blocks.{block}.{layer++}", ch, Depth(level));
                if (level > 0 && i == l.NumResBlocks) { Conv($"output_blocks.{block}.{layer}.conv", ch, ch, 3); ds /= 2; }
            }
        }
        Norm("out.0", ch);
        Conv("out.2", l.OutChannels, mc, 3);
        return d;
    }

    public static Dictionary<string, long[]> Vae(LdmConfig l, string prefix = "first_stage_model.")
    {
        var d = new Dictionary<string, long[]>(StringComparer.Ordinal);
        void Conv(string k, long o, long i, long kernel) { d[prefix + k + ".weight"] = [o, i, kernel, kernel]; d[prefix + k + ".bias"] = [o]; }
        void Norm(string k, long c) { d[prefix + k + ".weight"] = [c]; d[prefix + k + ".bias"] = [c]; }
        void Resnet(string k, long i, long o)
        {
            Norm(k + ".norm1", i); Conv(k + ".conv1", o, i, 3); Norm(k + ".norm2", o); Conv(k + ".conv2", o, o, 3);
            if (i != o) Conv(k + ".nin_shortcut", o, i, 1);
        }
        void Mid(string side, long c)
        {
            Resnet($"{side}.mid.block_1", c, c);
            Norm($"{side}.mid.attn_1.norm", c);
            foreach (var p in new[] { "q", "k", "v", "proj_out" }) Conv($"{side}.mid.attn_1.{p}", c, c, 1);
            Resnet($"{side}.mid.block_2", c, c);
        }
        long ch = l.VaeCh, z = l.ZChannels;
        int n = l.VaeChMult.Length;
        Conv("encoder.conv_in", ch, l.VaeInChannels, 3);
        long blockIn = ch;
        for (int i = 0; i < n; i++)
        {
            blockIn = ch * (i == 0 ? 1 : l.VaeChMult[i - 1]);
            long blockOut = ch * l.VaeChMult[i];
            for (int j = 0; j < l.VaeNumResBlocks; j++) { Resnet($"encoder.down.{i}.block.{j}", blockIn, blockOut); blockIn = blockOut; }
            if (i != n - 1) Conv($"encoder.down.{i}.downsample.conv", blockIn, blockIn, 3);
        }
        Mid("encoder", blockIn);
        Norm("encoder.norm_out", blockIn);
        Conv("encoder.conv_out", 2 * z, blockIn, 3);
        blockIn = ch * l.VaeChMult[^1];
        Conv("decoder.conv_in", blockIn, z, 3);
        Mid("decoder", blockIn);
        for (int i = n - 1; i >= 0; i--)
        {
            long blockOut = ch * l.VaeChMult[i];
            for (int j = 0; j <= l.VaeNumResBlocks; j++) { Resnet($"decoder.up.{i}.block.{j}", blockIn, blockOut); blockIn = blockOut; }
            if (i != 0) Conv($"decoder.up.{i}.upsample.conv", blockIn, blockIn, 3);
        }
        Norm("decoder.norm_out", blockIn);
        Conv("decoder.conv_out", l.VaeOutCh, blockIn, 3);
        Conv("quant_conv", 2 * z, 2 * z, 1);
        Conv("post_quant_conv", z, z, 1);
        return d;
    }

    /// <summary>transformers' CLIPTextModel (OpenAI CLIP as SD 1.x and SDXL store it); <paramref name="positionIds"/>: the pre-4.31 buffer.</summary>
    public static Dictionary<string, long[]> OpenAiClip(string prefix, long width, int layers, long intermediate, bool positionIds, long vocab = 49408)
    {
        var d = new Dictionary<string, long[]>(StringComparer.Ordinal);
        string t = prefix + "text_model.";
        d[t + "embeddings.token_embedding.weight"] = [vocab, width];
        d[t + "embeddings.position_embedding.weight"] = [77, width];
        if (positionIds) d[t + "embeddings.position_ids"] = [1, 77];
        for (int i = 0; i < layers; i++)
        {
            string e = $"{t}encoder.layers.{i}.";
            foreach (var p in new[] { "q_proj", "k_proj", "v_proj", "out_proj" }) { d[$"{e}self_attn.{p}.weight"] = [width, width]; d[$"{e}self_attn.{p}.bias"] = [width]; }
            foreach (var n in new[] { "layer_norm1", "layer_norm2" }) { d[$"{e}{n}.weight"] = [width]; d[$"{e}{n}.bias"] = [width]; }
            d[e + "mlp.fc1.weight"] = [intermediate, width]; d[e + "mlp.fc1.bias"] = [intermediate];
            d[e + "mlp.fc2.weight"] = [width, intermediate]; d[e + "mlp.fc2.bias"] = [width];
        }
        d[t + "final_layer_norm.weight"] = [width]; d[t + "final_layer_norm.bias"] = [width];
        return d;
    }

    /// <summary>OpenCLIP's text tower as <c>FrozenOpenCLIPEmbedder(2)</c> stores it (the visual tower deleted).</summary>
    public static Dictionary<string, long[]> OpenClip(string prefix, long width, int layers, long projection, long vocab = 49408)
    {
        var d = new Dictionary<string, long[]>(StringComparer.Ordinal)
        {
            [prefix + "positional_embedding"] = [77, width],
            [prefix + "token_embedding.weight"] = [vocab, width],
            [prefix + "ln_final.weight"] = [width], [prefix + "ln_final.bias"] = [width],
            [prefix + "text_projection"] = [width, projection],
            [prefix + "logit_scale"] = [],
        };
        for (int i = 0; i < layers; i++)
        {
            string r = $"{prefix}transformer.resblocks.{i}.";
            d[r + "ln_1.weight"] = [width]; d[r + "ln_1.bias"] = [width]; d[r + "ln_2.weight"] = [width]; d[r + "ln_2.bias"] = [width];
            d[r + "attn.in_proj_weight"] = [3 * width, width]; d[r + "attn.in_proj_bias"] = [3 * width];
            d[r + "attn.out_proj.weight"] = [width, width]; d[r + "attn.out_proj.bias"] = [width];
            d[r + "mlp.c_fc.weight"] = [4 * width, width]; d[r + "mlp.c_fc.bias"] = [4 * width];
            d[r + "mlp.c_proj.weight"] = [width, 4 * width]; d[r + "mlp.c_proj.bias"] = [width];
        }
        return d;
    }
}
