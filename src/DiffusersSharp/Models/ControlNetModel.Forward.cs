using TorchSharp;
using static TorchSharp.torch;

namespace DiffusersSharp.Models;

public sealed partial class ControlNetModel
{
    /// <summary>
    /// diffusers' <c>forward</c>: the residuals for one UNet call. <paramref name="sample"/>: the UNet's (scaled) input
    /// latents (B, in_channels, h, w); <paramref name="timestep"/>, <paramref name="encoderHiddenStates"/> (B, S,
    /// cross_attention_dim), <paramref name="classLabels"/>, <paramref name="timestepCond"/>, <paramref name="attentionMask"/>,
    /// <paramref name="addedCondKwargs"/> (SDXL: text_embeds, time_ids) and <paramref name="crossAttentionKwargs"/> as the
    /// UNet takes them; <paramref name="controlnetCond"/>: the control image (B, conditioning_channels, h·2^n, w·2^n) in
    /// [0, 1] (channels flipped first for "bgr"). Every residual is multiplied by <paramref name="conditioningScale"/>;
    /// with <paramref name="guessMode"/> (and no global pooling) residual j by <c>logspace(-1, 0, n + 1)[j]</c> times it
    /// and the mid residual by the last entry. With <c>global_pool_conditions</c> each residual is averaged over
    /// height and width. The caller owns the output.
    /// </summary>
    public ControlNetOutput Forward(Tensor sample, UNetTimestep timestep, Tensor encoderHiddenStates, Tensor controlnetCond,
        double conditioningScale = 1.0, Tensor? classLabels = null, Tensor? timestepCond = null, Tensor? attentionMask = null,
        AddedCondKwargs? addedCondKwargs = null, CrossAttentionOptions? crossAttentionKwargs = null, bool guessMode = false)
    {
        var c = Config;
        CheckInputs(sample, encoderHiddenStates, controlnetCond);
        ModelInputs.Finite(conditioningScale, "ControlNetModel", "conditioning_scale");
        if (classLabels is not null && _classEmbedding is null)
            throw new ArgumentException("ControlNetModel: class_labels were given but the model has no class embedding");
        long batch = sample.shape[0];
        _kernels.Follow(ChannelsLast);

        using var scope = torch.NewDisposeScope();
        if (ChannelsLast)
        {
            sample = Layers.ToChannelsLast(sample);
            controlnetCond = Layers.ToChannelsLast(controlnetCond);
        }

        // check channel order
        if (c.ControlnetConditioningChannelOrder == "bgr")
            controlnetCond = torch.flip(controlnetCond, 1);

        // prepare attention_mask
        if (attentionMask is not null)
            attentionMask = ((1 - attentionMask.to_type(sample.dtype)) * -10000.0).unsqueeze(1);

        // 1. time
        var timesteps = timestep.ToTensor(sample.device, "ControlNetModel");
        if (timesteps.dim() != 1 || (timesteps.shape[0] != 1 && timesteps.shape[0] != batch))
            throw new ArgumentException($"ControlNetModel: timestep must be a scalar or hold 1 or {batch} (batch size) values, got shape {timestep}");
        var inputs = new UNetEmbeddingInputs(timesteps.expand(batch), sample.dtype)
        {
            ClassLabels = classLabels, TimestepCond = timestepCond, AddedCondKwargs = addedCondKwargs, Hook = Hook,
        };
        var emb = _timeEmbedding.Forward(inputs);
        if (_classEmbedding is not null)
            emb = emb + _classEmbedding.Forward(inputs);
        if (_addedEmbedding is not null)
            emb = emb + _addedEmbedding.Forward(inputs);
        var context = new BlockContext
        {
            EncoderHiddenStates = encoderHiddenStates, AttentionMask = attentionMask,
            CrossAttention = crossAttentionKwargs ?? CrossAttentionOptions.Default,
        };

        // 2. pre-process: the control image's embedding is added to conv_in's output
        var h = conv_in.forward(sample);
        Hook?.Invoke("conv_in", h);
        var cond = controlnet_cond_embedding.forward(controlnetCond);
        Hook?.Invoke("controlnet_cond_embedding", cond);
        h = h + cond;

        // 3. down
        var downResSamples = new List<Tensor> { h };
        foreach (var block in down_blocks)
        {
            (h, var outputStates) = block.Forward(h, emb, context);
            downResSamples.AddRange(outputStates);
        }

        // 4. mid
        h = mid_block.Forward(h, emb, context);
        Hook?.Invoke("mid_block", h);

        // 5. control net blocks (zero convolutions)
        var down = downResSamples.Select((x, j) => controlnet_down_blocks[j].forward(x)).ToList();
        var mid = controlnet_mid_block.forward(h);

        // 6. scaling
        if (guessMode && !c.GlobalPoolConditions)
        {
            var scales = torch.logspace(-1, 0, down.Count + 1, dtype: ScalarType.Float32, device: sample.device) * conditioningScale;
            down = down.Select((x, j) => x * scales[j]).ToList();
            mid = mid * scales[-1];
        }
        else
        {
            down = down.Select(x => x * conditioningScale).ToList();
            mid = mid * conditioningScale;
        }
        if (c.GlobalPoolConditions)
        {
            down = down.Select(x => x.mean([2, 3], keepdim: true)).ToList();
            mid = mid.mean([2, 3], keepdim: true);
        }
        scope.MoveToOuter(down.Append(mid));
        return new ControlNetOutput(down, mid);
    }

    /// <summary>Test hook: called with (module name, output) for conv_in (before the conditioning is added), the conditioning embedding and the mid block.</summary>
    internal Action<string, Tensor>? Hook { get; set; }

    private void CheckInputs(Tensor sample, Tensor encoderHiddenStates, Tensor controlnetCond)
    {
        var c = Config;
        const string model = "ControlNetModel";
        ModelInputs.NotEmpty(sample, model, "sample");
        if (sample.dim() != 4 || sample.shape[1] != c.InChannels)
            throw new ArgumentException($"ControlNetModel expects a sample of shape (batch, {c.InChannels}, height, width), got {Layers.Shape(sample)}");
        ModelInputs.SameDType(sample, DType, model, "sample");
        long batch = sample.shape[0];
        if (encoderHiddenStates is null || encoderHiddenStates.dim() != 3)
            throw new ArgumentException($"ControlNetModel expects encoder_hidden_states of shape (batch, sequence, dim), got {(encoderHiddenStates is null ? "null" : Layers.Shape(encoderHiddenStates))}");
        if (encoderHiddenStates.shape[2] != c.CrossAttentionDim)
            throw new ArgumentException($"ControlNetModel: encoder_hidden_states have hidden size {encoderHiddenStates.shape[2]}, but the ControlNet's cross_attention_dim is {c.CrossAttentionDim}");
        if (encoderHiddenStates.shape[0] != batch)
            throw new ArgumentException($"ControlNetModel: encoder_hidden_states batch {encoderHiddenStates.shape[0]} != sample batch {batch}");
        ModelInputs.NotEmpty(encoderHiddenStates, model, "encoder_hidden_states");
        ModelInputs.SameDType(encoderHiddenStates, DType, model, "encoder_hidden_states");
        if (controlnetCond is null || controlnetCond.dim() != 4 || controlnetCond.shape[1] != c.ConditioningChannels)
            throw new ArgumentException($"ControlNetModel expects controlnet_cond of shape (batch, {c.ConditioningChannels}, height, width), got {(controlnetCond is null ? "null" : Layers.Shape(controlnetCond))}");
        if (controlnetCond.shape[0] != batch)
            throw new ArgumentException($"ControlNetModel: controlnet_cond batch {controlnetCond.shape[0]} != sample batch {batch}");
        ModelInputs.SameDType(controlnetCond, DType, model, "controlnet_cond");
        int f = 1 << ConditioningDownsamplings;
        if (Embedded(controlnetCond.shape[2]) != sample.shape[2] || Embedded(controlnetCond.shape[3]) != sample.shape[3])
            throw new ArgumentException(
                $"ControlNetModel: the control image is {controlnetCond.shape[3]}x{controlnetCond.shape[2]}, but the latents are {sample.shape[3]}x{sample.shape[2]}; " +
                $"the conditioning embedding halves the image {ConditioningDownsamplings} times, so it must be {sample.shape[3] * f}x{sample.shape[2] * f}");
    }

    /// <summary>The size a side of the control image has after the conditioning embedding's stride-2 convolutions (3×3, padding 1).</summary>
    private long Embedded(long size)
    {
        for (int i = 0; i < ConditioningDownsamplings; i++) size = (size - 1) / 2 + 1;
        return size;
    }
}
