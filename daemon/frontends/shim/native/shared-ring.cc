// The shim's record ring (proto/shim-frames.md, "Record ring"): shared memory the daemon makes, the
// shim opens through the daemon's descriptor and writes large records into, and the daemon reads as a
// SharedArrayBuffer, so that worker threads (hashing, encryption) read them there too. Node cannot
// map memory itself, and N-API makes only plain ArrayBuffers over outside memory: hence V8's API.
#include <node.h>
#include <v8.h>

#include <cerrno>
#include <cstring>
#include <string>
#include <sys/mman.h>
#include <unistd.h>

namespace {

void Throw(v8::Isolate *isolate, const std::string &what)
{
	isolate->ThrowException(v8::Exception::Error(v8::String::NewFromUtf8(isolate, what.c_str()).ToLocalChecked()));
}

void Unmap(void *data, size_t length, void *)
{
	munmap(data, length);
}

// create(bytes) -> { fd, memory }: a memfd of that size (close-on-exec: the shim opens it as
// /proc/PID/fd/N) mapped shared; the mapping lives as long as the SharedArrayBuffer and its copies in
// workers.
void Create(const v8::FunctionCallbackInfo<v8::Value> &args)
{
	v8::Isolate *isolate = args.GetIsolate();
	v8::Local<v8::Context> context = isolate->GetCurrentContext();
	double requested = args[0]->NumberValue(context).FromMaybe(0);
	if (!(requested > 0) || requested > 1ull << 32) {
		Throw(isolate, "shared-ring: size out of range");
		return;
	}
	size_t bytes = (size_t)requested;
	int fd = memfd_create("tapeproxy-record-ring", MFD_CLOEXEC);
	if (fd < 0) {
		Throw(isolate, std::string("shared-ring: memfd_create: ") + strerror(errno));
		return;
	}
	if (ftruncate(fd, (off_t)bytes) != 0) {
		int e = errno;
		close(fd);
		Throw(isolate, std::string("shared-ring: ftruncate: ") + strerror(e));
		return;
	}
	void *data = mmap(nullptr, bytes, PROT_READ | PROT_WRITE, MAP_SHARED, fd, 0);
	if (data == MAP_FAILED) {
		int e = errno;
		close(fd);
		Throw(isolate, std::string("shared-ring: mmap: ") + strerror(e));
		return;
	}
	std::shared_ptr<v8::BackingStore> store = v8::SharedArrayBuffer::NewBackingStore(data, bytes, Unmap, nullptr);
	v8::Local<v8::Object> result = v8::Object::New(isolate);
	result->Set(context, v8::String::NewFromUtf8Literal(isolate, "fd"), v8::Integer::New(isolate, fd)).Check();
	result->Set(context, v8::String::NewFromUtf8Literal(isolate, "memory"), v8::SharedArrayBuffer::New(isolate, std::move(store)))
		.Check();
	args.GetReturnValue().Set(result);
}

} // namespace

NODE_MODULE_INIT(/* exports, module, context */)
{
	v8::Isolate *isolate = context->GetIsolate();
	exports->Set(context, v8::String::NewFromUtf8Literal(isolate, "create"), v8::FunctionTemplate::New(isolate, Create)->GetFunction(context).ToLocalChecked())
		.Check();
}
