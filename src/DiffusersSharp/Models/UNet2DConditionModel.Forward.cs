using TorchSharp;
using TorchSharp.Modules;
using static TorchSharp.torch;

namespace DiffusersSharp.Models;

public sealed partial class UNet2DConditionModel
{
    /// <summary>An integer timestep, as diffusers turns a Python int into an int64 tensor.</summary>
    public UNet2DConditionOutput Forward(Tensor sample, long timestep, Tensor encoderHiddenStates,
        Tensor? classLabels = null, Tensor? timestepCond = null, Tensor? attentionMask = null,
        Tensor? encoderAttentionMask = null)
    {
        using var t = torch.tensor(new[] { timestep }, dtype: ScalarType.Int64, device: sample.device);
        return Forward(sample, t, encoderHiddenStates, classLabels, timestepCond, attentionMask, encoderAttentionMask);
    }

    /// <summary>A fractional timestep, as diffusers turns a Python float into a float64 tensor.</summary>
    public UNet2DConditionOutput Forward(Tensor sample, double timestep, Tensor encoderHiddenStates,
        Tensor? classLabels = null, Tensor? timestepCond = null, Tensor? attentionMask = null,
        Tensor? encoderAttentionMask = null)
    {
        using var t = torch.tensor(new[] { timestep }, dtype: ScalarType.Float64, device: sample.device);
        return Forward(sample, t, encoderHiddenStates, classLabels, timestepCond, attentionMask, encoderAttentionMask);
    }

    /// <summary>
    /// One denoising prediction. <paramref name="sample"/>: (B, in_channels, H, W); <paramref name="timestep"/>:
    /// a 0-d or 1-d tensor of 1 or B values (int or float); <paramref name="encoderHiddenStates"/>: (B, S,
    /// cross_attention_dim). <paramref name="attentionMask"/> / <paramref name="encoderAttentionMask"/>: (B, S) with
    /// 1 = keep, 0 = discard (turned into a -10000 bias as diffusers does). <paramref name="classLabels"/>: required
    /// exactly when the model has a class embedding. <paramref name="timestepCond"/>: for <c>time_cond_proj_dim</c>.
    /// </summary>
    public UNet2DConditionOutput Forward(Tensor sample, Tensor timestep, Tensor encoderHiddenStates,
        Tensor? classLabels = null, Tensor? timestepCond = null, Tensor? attentionMask = null,
        Tensor? encoderAttentionMask = null)
    {
        var c = Config;
        if (sample.dim() != 4 || sample.shape[1] != c.InChannels)
            throw new ArgumentException($"UNet2DConditionModel expects a sample of shape (batch, {c.InChannels}, height, width), got {Layers.Shape(sample)}");
        long batch = sample.shape[0];
        if (encoderHiddenStates is null || encoderHiddenStates.dim() != 3)
            throw new ArgumentException($"UNet2DConditionModel expects encoder_hidden_states of shape (batch, sequence, dim), got {(encoderHiddenStates is null ? "null" : Layers.Shape(encoderHiddenStates))}");
        long expectedDim = encoder_hid_proj is not null ? c.EncoderHidDim!.Value : c.CrossAttentionDim[0];
        if (c.CrossAttentionDim.Length == 1 && encoderHiddenStates.shape[2] != expectedDim)
            throw new ArgumentException($"UNet2DConditionModel: encoder_hidden_states have hidden size {encoderHiddenStates.shape[2]}, but the UNet's {(encoder_hid_proj is not null ? "encoder_hid_dim" : "cross_attention_dim")} is {expectedDim}");
        if (encoderHiddenStates.shape[0] != batch)
            throw new ArgumentException($"UNet2DConditionModel: encoder_hidden_states batch {encoderHiddenStates.shape[0]} != sample batch {batch}");

        using var scope = torch.NewDisposeScope();
        var hook = _hook;

        // the up path needs explicit sizes when H or W is not a multiple of 2^num_upsamplers
        long overallUpFactor = 1L << NumUpsamplers;
        bool forwardUpsampleSize = sample.shape[2] % overallUpFactor != 0 || sample.shape[3] % overallUpFactor != 0;

        if (attentionMask is not null)
            attentionMask = ((1 - attentionMask.to_type(sample.dtype)) * -10000.0).unsqueeze(1);
        if (encoderAttentionMask is not null)
            encoderAttentionMask = ((1 - encoderAttentionMask.to_type(sample.dtype)) * -10000.0).unsqueeze(1);

        // 0. center input if necessary
        if (c.CenterInputSample)
            sample = 2 * sample - 1.0;

        // 1. time
        var timesteps = timestep.dim() == 0 ? timestep.unsqueeze(0) : timestep;
        timesteps = timesteps.to(sample.device);
        if (timesteps.dim() != 1 || (timesteps.shape[0] != 1 && timesteps.shape[0] != batch))
            throw new ArgumentException($"UNet2DConditionModel: timestep must be a scalar or hold 1 or {batch} (batch size) values, got shape {Layers.Shape(timestep)}");
        timesteps = timesteps.expand(batch);

        var tEmb = TimeProj(timesteps);
        hook?.Invoke("time_proj", tEmb);
        tEmb = tEmb.to_type(sample.dtype);
        var emb = time_embedding.Forward(tEmb, timestepCond);
        hook?.Invoke("time_embedding", emb);

        if (class_embedding is not null)
        {
            if (classLabels is null)
                throw new ArgumentException("class_labels should be provided when num_class_embeds > 0");
            var labels = classLabels.to(sample.device);
            if (c.ClassEmbedType == "timestep")
                labels = TimeProj(labels).to_type(sample.dtype);
            var classEmb = class_embedding switch
            {
                TimestepEmbedding te => te.Forward(labels),
                nn.Module<Tensor, Tensor> m => m.forward(labels),
                _ => throw new InvalidOperationException("unexpected class embedding module"),
            };
            classEmb = classEmb.to_type(sample.dtype);
            emb = c.ClassEmbeddingsConcat ? torch.cat(new[] { emb, classEmb }, dim: -1) : emb + classEmb;
        }
        else if (classLabels is not null)
            throw new ArgumentException("UNet2DConditionModel: class_labels were given but the model has no class embedding");

        if (_timeEmbedAct is not null)
            emb = _timeEmbedAct(emb);

        if (encoder_hid_proj is not null)
            encoderHiddenStates = encoder_hid_proj.forward(encoderHiddenStates);

        // 2. pre-process
        if (ChannelsLast)
            sample = Layers.ToChannelsLast(sample);
        sample = conv_in.forward(sample);
        hook?.Invoke("conv_in", sample);

        // 3. down
        var resSamples = new List<Tensor> { sample };
        for (int i = 0; i < down_blocks.Count; i++)
        {
            Tensor h;
            Tensor[] res;
            var input = sample;
            if (down_blocks[i] is CrossAttnDownBlock2D cross)
                (h, res) = ScopedCall.Run(() => cross.Forward(input, emb, encoderHiddenStates, attentionMask, encoderAttentionMask));
            else
            {
                var block = (IDownBlock2D)down_blocks[i];
                (h, res) = ScopedCall.Run(() => block.Forward(input, emb));
            }
            sample = h;
            resSamples.AddRange(res);
            hook?.Invoke($"down_blocks.{i}", sample);
        }

        // 4. mid
        var midInput = sample;
        if (mid_block is UNetMidBlock2DCrossAttn midCross)
            sample = ScopedCall.Run(() => midCross.Forward(midInput, emb, encoderHiddenStates, attentionMask, encoderAttentionMask));
        else if (mid_block is UNetMidBlock2D mid)
            sample = ScopedCall.Run(() => mid.Forward(midInput, emb));
        if (mid_block is not null)
            hook?.Invoke("mid_block", sample);

        // 5. up
        for (int i = 0; i < up_blocks.Count; i++)
        {
            bool isFinal = i == up_blocks.Count - 1;
            int nRes = up_blocks[i] is CrossAttnUpBlock2D cu ? cu.NumResnets : ((IUpBlock2D)up_blocks[i]).NumResnets;
            var res = resSamples.GetRange(resSamples.Count - nRes, nRes);
            resSamples.RemoveRange(resSamples.Count - nRes, nRes);
            long[]? upsampleSize = !isFinal && forwardUpsampleSize
                ? new[] { resSamples[^1].shape[2], resSamples[^1].shape[3] }
                : null;
            var prev = sample;
            if (up_blocks[i] is CrossAttnUpBlock2D crossUp)
                sample = ScopedCall.Run(() => crossUp.Forward(prev, res, emb, encoderHiddenStates, upsampleSize, attentionMask, encoderAttentionMask));
            else
            {
                var block = (IUpBlock2D)up_blocks[i];
                sample = ScopedCall.Run(() => block.Forward(prev, res, emb, upsampleSize));
            }
            // skip states are consumed once: free them now to keep the peak memory down
            foreach (var r in res) if (!ReferenceEquals(r, sample)) r.Dispose();
            if (!ReferenceEquals(prev, sample)) prev.Dispose();
            hook?.Invoke($"up_blocks.{i}", sample);
        }

        // 6. post-process
        var normed = conv_norm_out!.forward(sample);
        sample.Dispose();
        hook?.Invoke("conv_norm_out", normed);
        normed = _convAct(normed);
        sample = conv_out.forward(normed);
        normed.Dispose();
        hook?.Invoke("conv_out", sample);
        if (ChannelsLast)
            sample = sample.contiguous();

        return new UNet2DConditionOutput(sample.MoveToOuterDisposeScope());
    }

    private Tensor TimeProj(Tensor timesteps) => time_proj switch
    {
        Timesteps ts => ts.Forward(timesteps),
        GaussianFourierProjection gf => gf.Forward(timesteps),
        _ => throw new InvalidOperationException("unexpected time projection module"),
    };
}
