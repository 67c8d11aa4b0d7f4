// A doubly linked list threaded through its elements: no node allocation, O(1)
// unlink from the element alone. An element is in at most one list at a time.
#pragma once

#include "core/assert.h"

#include <cstddef>

namespace pooled {

template <typename T>
class IntrusiveList;

template <typename T>
class ListHook {
private:
    friend class IntrusiveList<T>;
    T* prev_ = nullptr;
    T* next_ = nullptr;
};

template <typename T>
class IntrusiveList {
public:
    bool empty() const { return head_ == nullptr; }
    size_t size() const { return size_; }
    T* front() const { return head_; }
    static T* next(const T& element) { return hook(element).next_; }
    bool contains(const T& element) const {
        return hook(element).prev_ != nullptr || head_ == &element;
    }

    void pushFront(T& element) {
        POOLED_ASSERT(!contains(element) && hook(element).next_ == nullptr,
                      "an element is in at most one list at a time");
        hook(element).prev_ = nullptr;
        hook(element).next_ = head_;
        if (head_)
            hook(*head_).prev_ = &element;
        head_ = &element;
        ++size_;
    }
    // `element` must be in this list.
    void remove(T& element) {
        POOLED_ASSERT(contains(element), "only a member is removed");
        ListHook<T>& h = hook(element);
        if (h.prev_)
            hook(*h.prev_).next_ = h.next_;
        else
            head_ = h.next_;
        if (h.next_)
            hook(*h.next_).prev_ = h.prev_;
        h.prev_ = h.next_ = nullptr;
        --size_;
    }

private:
    static ListHook<T>& hook(T& element) { return static_cast<ListHook<T>&>(element); }
    static const ListHook<T>& hook(const T& element) {
        return static_cast<const ListHook<T>&>(element);
    }

    T* head_ = nullptr;
    size_t size_ = 0;
};

} // namespace pooled
