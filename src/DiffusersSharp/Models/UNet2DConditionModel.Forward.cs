using TorchSharp;
using static TorchSharp.torch;

namespace DiffusersSharp.Models;

public sealed partial class UNet2DConditionModel
{
    /// <summary>
    /// One denoising prediction (diffusers' <c>forward</c>). <paramref name="sample"/>: (B, in_channels, H, W);
    /// <paramref name="timestep"/>: a number (an integer becomes int64, a fraction float64, as in diffusers) or a 0-d or
    /// 1-d tensor of 1 or B values; <paramref name="encoderHiddenStates"/>: (B, S, cross_attention_dim).
    /// <paramref name="attentionMask"/> / <paramref name="encoderAttentionMask"/>: (B, S) with 1 = keep, 0 = discard
    /// (turned into a -10000 bias as diffusers does); the encoder mask also as (B, 1, S), which diffusers reads the same
    /// way. <paramref name="classLabels"/>: required exactly when the model has a class embedding.
    /// <paramref name="timestepCond"/>: for <c>time_cond_proj_dim</c>, (B, dim), (1, dim) or (dim). <paramref name="crossAttentionKwargs"/>:
    /// per-call attention options. <paramref name="addedCondKwargs"/>: what <c>addition_embed_type</c> reads.
    /// <paramref name="downBlockAdditionalResiduals"/> / <paramref name="midBlockAdditionalResidual"/> (ControlNet): added
    /// to each skip state (conv_in output, then each resnet/attention and downsampler output) and to the mid block's
    /// output. <paramref name="downIntrablockAdditionalResiduals"/> (T2I-Adapter): one per down block, in order, added
    /// inside it (see <see cref="BlockContext.AdditionalResidual"/>; a batch of 1 serves every sample, as torch
    /// broadcasts it); one left over of the mid block's shape goes onto the mid block's output.
    /// </summary>
    public UNet2DConditionOutput Forward(Tensor sample, UNetTimestep timestep, Tensor encoderHiddenStates,
        Tensor? classLabels = null, Tensor? timestepCond = null, Tensor? attentionMask = null,
        CrossAttentionOptions? crossAttentionKwargs = null, AddedCondKwargs? addedCondKwargs = null,
        IReadOnlyList<Tensor>? downBlockAdditionalResiduals = null, Tensor? midBlockAdditionalResidual = null,
        IReadOnlyList<Tensor>? downIntrablockAdditionalResiduals = null, Tensor? encoderAttentionMask = null)
    {
        var c = Config;
        const string model = "UNet2DConditionModel";
        ModelInputs.NotEmpty(sample, model, "sample");
        if (sample.dim() != 4 || sample.shape[1] != c.InChannels)
            throw new ArgumentException($"UNet2DConditionModel expects a sample of shape (batch, {c.InChannels}, height, width), got {Layers.Shape(sample)}");
        ModelInputs.SameDType(sample, DType, model, "sample");
        long batch = sample.shape[0];
        if (encoderHiddenStates is null || encoderHiddenStates.dim() != 3)
            throw new ArgumentException($"UNet2DConditionModel expects encoder_hidden_states of shape (batch, sequence, dim), got {(encoderHiddenStates is null ? "null" : Layers.Shape(encoderHiddenStates))}");
        long expectedDim = encoder_hid_proj is not null ? c.EncoderHidDim!.Value : c.CrossAttentionDim[0];
        if (c.CrossAttentionDim.Length == 1 && encoderHiddenStates.shape[2] != expectedDim)
            throw new ArgumentException($"UNet2DConditionModel: encoder_hidden_states have hidden size {encoderHiddenStates.shape[2]}, but the UNet's {(encoder_hid_proj is not null ? "encoder_hid_dim" : "cross_attention_dim")} is {expectedDim}");
        if (encoderHiddenStates.shape[0] != batch)
            throw new ArgumentException($"UNet2DConditionModel: encoder_hidden_states batch {encoderHiddenStates.shape[0]} != sample batch {batch}");
        ModelInputs.NotEmpty(encoderHiddenStates, model, "encoder_hidden_states");
        ModelInputs.SameDType(encoderHiddenStates, DType, model, "encoder_hidden_states");
        if (encoderAttentionMask is not null && !MaskFits(encoderAttentionMask, batch, encoderHiddenStates.shape[1]))
            throw new ArgumentException(
                $"UNet2DConditionModel: encoder_attention_mask has shape {Layers.Shape(encoderAttentionMask)}, but encoder_hidden_states {Layers.Shape(encoderHiddenStates)} need one of [{batch}, {encoderHiddenStates.shape[1]}] or [{batch}, 1, {encoderHiddenStates.shape[1]}] (1 = keep a token, 0 = discard it)",
                "encoder_attention_mask");
        if (classLabels is not null && _classEmbedding is null)
            throw new ArgumentException("UNet2DConditionModel: class_labels were given but the model has no class embedding");
        _kernels.Follow(ChannelsLast);

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
        var h = new Chain(sample);
        if (c.CenterInputSample)
            h.Then(x => 2 * x - 1.0);

        // 1. time
        var timesteps = timestep.ToTensor(sample.device, model);
        if (timesteps.dim() != 1 || (timesteps.shape[0] != 1 && timesteps.shape[0] != batch))
            throw new ArgumentException($"UNet2DConditionModel: timestep must be a scalar or hold 1 or {batch} (batch size) values, got shape {timestep}");
        var inputs = new UNetEmbeddingInputs(timesteps.expand(batch), sample.dtype)
        {
            ClassLabels = classLabels, TimestepCond = timestepCond, AddedCondKwargs = addedCondKwargs, Hook = hook,
        };
        var emb = _timeEmbedding.Forward(inputs);
        if (_classEmbedding is not null)
        {
            var classEmb = _classEmbedding.Forward(inputs);
            if (c.ClassEmbeddingsConcat && !classEmb.shape[..^1].SequenceEqual(emb.shape[..^1]))
                throw new ArgumentException(
                    $"UNet2DConditionModel: with class_embeddings_concat each sample's class embedding is joined to its time embedding, so class_labels " +
                    $"need one per sample (batch {batch}); they give class embeddings of shape {Layers.Shape(classEmb)} (torch.cat fails in diffusers)",
                    "class_labels");
            emb = c.ClassEmbeddingsConcat ? torch.cat([emb, classEmb], dim: -1) : emb + classEmb;
        }
        if (_addedEmbedding is not null)
            emb = emb + _addedEmbedding.Forward(inputs);
        if (_timeEmbedAct is not null)
            emb = _timeEmbedAct(emb);

        if (encoder_hid_proj is not null)
            encoderHiddenStates = encoder_hid_proj.forward(encoderHiddenStates);
        else if (_imageProjection is not null)
            encoderHiddenStates = WithImageStates(encoderHiddenStates, addedCondKwargs);
        var context = new BlockContext
        {
            EncoderHiddenStates = encoderHiddenStates, AttentionMask = attentionMask,
            EncoderAttentionMask = encoderAttentionMask, CrossAttention = crossAttentionKwargs ?? CrossAttentionOptions.Default,
        };
        LoraScale.Value = context.CrossAttention.Scale; // what every LoRA-compatible layer of this UNet reads

        // 2. pre-process
        if (ChannelsLast)
            h.Then(Layers.ToChannelsLast);
        h.Then(conv_in.forward);
        hook?.Invoke("conv_in", h.Value);

        // ControlNet residuals go onto the skip states and the mid block's output; T2I-Adapter residuals into the down
        // blocks (diffusers treats down residuals without a mid residual as the adapter's, deprecated)
        bool isControlnet = midBlockAdditionalResidual is not null && downBlockAdditionalResiduals is not null;
        if (downIntrablockAdditionalResiduals is null && midBlockAdditionalResidual is null)
            downIntrablockAdditionalResiduals = downBlockAdditionalResiduals;
        var adapter = new Queue<Tensor>(downIntrablockAdditionalResiduals ?? []);

        // 3. down
        var skips = new List<Tensor> { h.Keep() };   // diffusers' down_block_res_samples
        var down = h.Value;
        for (int i = 0; i < down_blocks.Count; i++)
        {
            var blockContext = adapter.Count > 0 ? context with { AdditionalResidual = adapter.Dequeue() } : context;
            (down, var outputStates) = down_blocks[i].Forward(down, emb, blockContext);
            skips.AddRange(outputStates);
            hook?.Invoke($"down_blocks.{i}", down);
        }
        if (isControlnet)
            AddResiduals(skips, downBlockAdditionalResiduals!, keep: down);

        // 4. mid: the last down output is a skip state unless ControlNet residuals replaced the skip states
        h = new Chain(down, handedOver: isControlnet);
        if (mid_block is not null)
        {
            h.Then(x => mid_block.Forward(x, emb, context));
            hook?.Invoke("mid_block", h.Value);
            if (adapter.Count > 0 && adapter.Peek().shape.SequenceEqual(h.Value.shape))
                h.Then(x => x.add_(adapter.Dequeue()));
        }
        if (isControlnet)
            h.Then(x => x + midBlockAdditionalResidual!);

        // 5. up
        for (int i = 0; i < up_blocks.Count; i++)
        {
            var block = up_blocks[i];
            var resSamples = skips.GetRange(skips.Count - block.NumResnets, block.NumResnets);
            skips.RemoveRange(skips.Count - block.NumResnets, block.NumResnets);
            long[]? upsampleSize = i < up_blocks.Count - 1 && forwardUpsampleSize ? skips[^1].shape[2..] : null;
            h.Then(x => block.Forward(x, resSamples, emb, context, upsampleSize));
            hook?.Invoke($"up_blocks.{i}", h.Value);
            foreach (var r in resSamples) r.Dispose(); // the caller frees what it no longer needs, here at once
        }

        // 6. post-process
        if (conv_norm_out is not null)
        {
            h.Then(conv_norm_out.forward);
            hook?.Invoke("conv_norm_out", h.Value);
            h.Then(_convAct);
        }
        h.Then(conv_out.forward);
        hook?.Invoke("conv_out", h.Value);
        if (ChannelsLast)
            h.Then(x => x.contiguous());

        return new UNet2DConditionOutput(scope.MoveToOuter(h.Value));
    }

    /// <summary>
    /// An encoder_attention_mask of (B, S) or (B, 1, S): diffusers turns either into a bias with a query dimension,
    /// (B, 1, S) or (B, 1, 1, S), which its prepare_attention_mask spreads over the heads to the same (B, heads, 1, S).
    /// </summary>
    private static bool MaskFits(Tensor mask, long batch, long tokens) =>
        mask.shape[0] == batch && mask.shape[^1] == tokens && (mask.dim() == 2 || (mask.dim() == 3 && mask.shape[1] == 1));

    /// <summary>diffusers' ControlNet step: each skip state j becomes skip_j + residual_j (new tensors; the old ones are freed unless still read).</summary>
    private static void AddResiduals(List<Tensor> skips, IReadOnlyList<Tensor> residuals, Tensor keep)
    {
        if (residuals.Count != skips.Count)
            throw new ArgumentException($"UNet2DConditionModel: down_block_additional_residuals has {residuals.Count} tensors, the UNet has {skips.Count} skip states (conv_in, then each down block's resnets and downsampler)");
        for (int j = 0; j < skips.Count; j++)
        {
            var residual = residuals[j];
            if (!Broadcasts(residual, skips[j]))
                throw new ArgumentException($"UNet2DConditionModel: down_block_additional_residuals[{j}] has shape {Layers.Shape(residual)}, the skip state {Layers.Shape(skips[j])}");
            skips[j] = new Chain(skips[j], handedOver: !ReferenceEquals(skips[j], keep)).Then(x => x + residual).Value;
        }
    }

    /// <summary>The residual's shape is the skip state's, or (B, C, 1, 1) (a ControlNet with global_pool_conditions; added by broadcasting).</summary>
    private static bool Broadcasts(Tensor residual, Tensor skip) =>
        residual.dim() == 4 && residual.shape[0] == skip.shape[0] && residual.shape[1] == skip.shape[1]
        && (residual.shape[2] == skip.shape[2] || residual.shape[2] == 1) && (residual.shape[3] == skip.shape[3] || residual.shape[3] == 1);
}
