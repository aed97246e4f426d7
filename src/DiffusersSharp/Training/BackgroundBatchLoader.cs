using System.Threading.Channels;

namespace DiffusersSharp.Training;

/// <summary>One micro-batch: <c>Count</c> examples of CHW floats, from global micro-batch <c>Index</c>.</summary>
public sealed record TrainingBatch(long Index, int Epoch, int Count, float[] Data);

/// <summary>
/// Decodes micro-batches of an <see cref="ImageFolderDataset"/> on a background task into a bounded channel, so
/// decoding overlaps the training step. The stream is a pure function of (seed, start): epoch e is the data set in
/// <see cref="ImageFolderDataset.EpochOrder"/> cut into batches of <c>batchSize</c> (the last one may be short).
/// </summary>
public sealed class BackgroundBatchLoader : IDisposable
{
    private readonly Channel<TrainingBatch> _channel;
    private readonly CancellationTokenSource _cts = new();
    private readonly Task _producer;

    /// <summary>
    /// Starts a thread that decodes and augments batches of <paramref name="batchSize"/> images ahead of the trainer
    /// (<paramref name="prefetch"/> at most), from batch <paramref name="startBatch"/> on (a resumed run).
    /// </summary>
    public BackgroundBatchLoader(ImageFolderDataset data, int batchSize, long seed, long startBatch = 0, int prefetch = 4)
    {
        if (batchSize <= 0) throw new DiffusersException($"batch size must be positive, got {batchSize}");
        BatchesPerEpoch = (data.Count + batchSize - 1) / batchSize;
        _channel = Channel.CreateBounded<TrainingBatch>(new BoundedChannelOptions(prefetch) { SingleReader = true, SingleWriter = true });
        var token = _cts.Token;
        _producer = Task.Run(async () =>
        {
            try
            {
                int orderEpoch = -1;
                int[] order = [];
                for (long b = startBatch; !token.IsCancellationRequested; b++)
                {
                    int epoch = (int)(b / BatchesPerEpoch);
                    int inEpoch = (int)(b % BatchesPerEpoch);
                    if (epoch != orderEpoch) { order = data.EpochOrder(seed, epoch); orderEpoch = epoch; }
                    int first = inEpoch * batchSize, count = Math.Min(batchSize, data.Count - first);
                    var buf = new float[count * data.ExampleSize];
                    for (int i = 0; i < count; i++)
                        data.Load(order[first + i], seed, epoch, buf.AsSpan(i * data.ExampleSize, data.ExampleSize));
                    await _channel.Writer.WriteAsync(new TrainingBatch(b, epoch, count, buf), token).ConfigureAwait(false);
                }
                _channel.Writer.TryComplete();
            }
            catch (OperationCanceledException) { _channel.Writer.TryComplete(); }
            catch (Exception e) { _channel.Writer.TryComplete(e); }
        }, token);
    }

    /// <summary>Full batches in one epoch (the last partial batch is dropped).</summary>
    public int BatchesPerEpoch { get; }

    /// <summary>The next micro-batch (blocks until decoded); rethrows a decode error.</summary>
    public TrainingBatch Next(CancellationToken cancellationToken = default)
    {
        var reader = _channel.Reader;
        while (true)
        {
            if (reader.TryRead(out var b)) return b;
            if (!reader.WaitToReadAsync(cancellationToken).AsTask().GetAwaiter().GetResult())
            {
                _channel.Reader.Completion.GetAwaiter().GetResult();
                throw new DiffusersException("the data loader stopped unexpectedly");
            }
        }
    }

    /// <summary>Stops the loader thread and frees the batches not taken.</summary>
    public void Dispose()
    {
        _cts.Cancel();
        try { _producer.Wait(); } catch (AggregateException) { }
        _cts.Dispose();
    }
}
