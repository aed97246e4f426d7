using DiffusersSharp.Models;

namespace DiffusersSharp.Tests.Pipelines.SingleFile;

/// <summary>
/// The state-dict keys and shapes of diffusers 0.25.1's models for a config, enumerated the way their constructors build
/// them (UNet2DConditionModel with its down/mid/up blocks, ResnetBlock2D, Transformer2DModel, Down/Upsample2D, the
/// text_time addition embedding; AutoencoderKL; transformers' CLIPTextModel(WithProjection)). Checked against real
/// folders and our models; independent of the library's key rules. Used for configs too large to build in a test.
/// </summary>
internal static class DiffusersLayoutReference
{
    public static Dictionary<string, long[]> UNet(UNet2DConditionModelConfig c)
    {
        var d = new Dictionary<string, long[]>(StringComparer.Ordinal);
        void Conv(string k, long o, long i, long kernel) { d[k + ".weight"] = [o, i, kernel, kernel]; d[k + ".bias"] = [o]; }
        void Linear(string k, long o, long i, bool bias = true) { d[k + ".weight"] = [o, i]; if (bias) d[k + ".bias"] = [o]; }
        void Norm(string k, long ch) { d[k + ".weight"] = [ch]; d[k + ".bias"] = [ch]; }
        int n = c.BlockOutChannels.Length;
        int[] Per(int[] v) => v.Length == 1 ? Enumerable.Repeat(v[0], n).ToArray() : v;
        int[] layers = Per(c.LayersPerBlock), depth = Per(c.TransformerLayersPerBlock.Select(t => t.At(0)).ToArray()), cross = Per(c.CrossAttentionDim);
        long b0 = c.BlockOutChannels[0], temb = b0 * 4;
        void Resnet(string k, long i, long o)
        {
            Norm(k + ".norm1", i); Conv(k + ".conv1", o, i, 3); Linear(k + ".time_emb_proj", o, temb);
            Norm(k + ".norm2", o); Conv(k + ".conv2", o, o, 3);
            if (i != o) Conv(k + ".conv_shortcut", o, i, 1);
        }
        void Transformer(string k, long ch, int blocks, long crossDim)
        {
            Norm(k + ".norm", ch);
            if (c.UseLinearProjection) Linear(k + ".proj_in", ch, ch); else Conv(k + ".proj_in", ch, ch, 1);
            for (int b = 0; b < blocks; b++)
            {
                string t = $"{k}.transformer_blocks.{b}";
                Norm(t + ".norm1", ch); Norm(t + ".norm2", ch); Norm(t + ".norm3", ch);
                foreach (var (attn, kv) in new[] { ("attn1", ch), ("attn2", crossDim) })
                {
                    Linear($"{t}.{attn}.to_q", ch, ch, false); Linear($"{t}.{attn}.to_k", ch, kv, false); Linear($"{t}.{attn}.to_v", ch, kv, false);
                    Linear($"{t}.{attn}.to_out.0", ch, ch);
                }
                Linear(t + ".ff.net.0.proj", ch * 8, ch); Linear(t + ".ff.net.2", ch, ch * 4);
            }
            if (c.UseLinearProjection) Linear(k + ".proj_out", ch, ch); else Conv(k + ".proj_out", ch, ch, 1);
        }

        Conv("conv_in", b0, c.InChannels, 3);
        Linear("time_embedding.linear_1", temb, b0); Linear("time_embedding.linear_2", temb, temb);
        if (c.AdditionEmbedType == "text_time")
        {
            Linear("add_embedding.linear_1", temb, c.ProjectionClassEmbeddingsInputDim!.Value);
            Linear("add_embedding.linear_2", temb, temb);
        }
        long output = b0;
        for (int i = 0; i < n; i++)
        {
            long input = output;
            output = c.BlockOutChannels[i];
            bool attn = c.DownBlockTypes[i] == "CrossAttnDownBlock2D";
            for (int j = 0; j < layers[i]; j++)
            {
                Resnet($"down_blocks.{i}.resnets.{j}", j == 0 ? input : output, output);
                if (attn) Transformer($"down_blocks.{i}.attentions.{j}", output, depth[i], cross[i]);
            }
            if (i < n - 1) Conv($"down_blocks.{i}.downsamplers.0.conv", output, output, 3);
        }
        long top = c.BlockOutChannels[^1];
        Resnet("mid_block.resnets.0", top, top);
        Transformer("mid_block.attentions.0", top, depth[^1], cross[^1]);
        Resnet("mid_block.resnets.1", top, top);
        long[] rev = c.BlockOutChannels.Reverse().Select(x => (long)x).ToArray();
        int[] revLayers = layers.Reverse().ToArray(), revDepth = depth.Reverse().ToArray(), revCross = cross.Reverse().ToArray();
        output = rev[0];
        for (int i = 0; i < n; i++)
        {
            long prev = output;
            output = rev[i];
            long input = rev[Math.Min(i + 1, n - 1)];
            bool attn = c.UpBlockTypes[i] == "CrossAttnUpBlock2D";
            for (int j = 0; j <= revLayers[i]; j++)
            {
                long skip = j == revLayers[i] ? input : output;
                Resnet($"up_blocks.{i}.resnets.{j}", (j == 0 ? prev : output) + skip, output);
                if (attn) Transformer($"up_blocks.{i}.attentions.{j}", output, revDepth[i], revCross[i]);
            }
            if (i < n - 1) Conv($"up_blocks.{i}.upsamplers.0.conv", output, output, 3);
        }
        Norm("conv_norm_out", b0);
        Conv("conv_out", c.OutChannels, b0, 3);
        return d;
    }

    public static Dictionary<string, long[]> Vae(AutoencoderKLConfig c)
    {
        var d = new Dictionary<string, long[]>(StringComparer.Ordinal);
        void Conv(string k, long o, long i, long kernel) { d[k + ".weight"] = [o, i, kernel, kernel]; d[k + ".bias"] = [o]; }
        void Norm(string k, long ch) { d[k + ".weight"] = [ch]; d[k + ".bias"] = [ch]; }
        void Resnet(string k, long i, long o)
        {
            Norm(k + ".norm1", i); Conv(k + ".conv1", o, i, 3); Norm(k + ".norm2", o); Conv(k + ".conv2", o, o, 3);
            if (i != o) Conv(k + ".conv_shortcut", o, i, 1);
        }
        void Mid(string side, long ch)
        {
            Resnet($"{side}.mid_block.resnets.0", ch, ch);
            Norm($"{side}.mid_block.attentions.0.group_norm", ch);
            foreach (var p in new[] { "to_q", "to_k", "to_v", "to_out.0" }) { d[$"{side}.mid_block.attentions.0.{p}.weight"] = [ch, ch]; d[$"{side}.mid_block.attentions.0.{p}.bias"] = [ch]; }
            Resnet($"{side}.mid_block.resnets.1", ch, ch);
        }
        int n = c.BlockOutChannels.Length;
        long z = c.LatentChannels;
        Conv("encoder.conv_in", c.BlockOutChannels[0], c.InChannels, 3);
        long output = c.BlockOutChannels[0];
        for (int i = 0; i < n; i++)
        {
            long input = output;
            output = c.BlockOutChannels[i];
            for (int j = 0; j < c.LayersPerBlock; j++) Resnet($"encoder.down_blocks.{i}.resnets.{j}", j == 0 ? input : output, output);
            if (i < n - 1) Conv($"encoder.down_blocks.{i}.downsamplers.0.conv", output, output, 3);
        }
        Mid("encoder", output);
        Norm("encoder.conv_norm_out", output);
        Conv("encoder.conv_out", 2 * z, output, 3);
        long top = c.BlockOutChannels[^1];
        Conv("decoder.conv_in", top, z, 3);
        Mid("decoder", top);
        var rev = c.BlockOutChannels.Reverse().ToArray();
        output = rev[0];
        for (int i = 0; i < n; i++)
        {
            long prev = output;
            output = rev[i];
            for (int j = 0; j <= c.LayersPerBlock; j++) Resnet($"decoder.up_blocks.{i}.resnets.{j}", j == 0 ? prev : output, output);
            if (i < n - 1) Conv($"decoder.up_blocks.{i}.upsamplers.0.conv", output, output, 3);
        }
        Norm("decoder.conv_norm_out", c.BlockOutChannels[0]);
        Conv("decoder.conv_out", c.OutChannels, c.BlockOutChannels[0], 3);
        Conv("quant_conv", 2 * z, 2 * z, 1);
        Conv("post_quant_conv", z, z, 1);
        return d;
    }

    public static Dictionary<string, long[]> Clip(CLIPTextConfig c, bool withProjection)
    {
        var d = OriginalLayoutReference.OpenAiClip("", c.HiddenSize, c.NumHiddenLayers, c.IntermediateSize, positionIds: false, c.VocabSize);
        if (withProjection) d["text_projection.weight"] = [c.ProjectionDim, c.HiddenSize];
        return d;
    }
}
